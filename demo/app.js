() => {
  // Restore pressed: bring the progress line and the live preview into view (on a phone they sit below the form).
  const status = document.querySelector("#status");
  const top = status ? status.getBoundingClientRect().top : 0;
  if (status && (top < 0 || top > window.innerHeight * 0.5)) {
    status.scrollIntoView({ block: "start" });
  }
  return [];
}
