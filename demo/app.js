() => {
  // Restore pressed. On a narrow screen the progress line and the live preview sit below the form: bring them
  // into view. If the request is refused, its reason appears at the control concerned: bring that into view.
  const status = document.querySelector("#status");
  const top = status ? status.getBoundingClientRect().top : 0;
  if (status && (top < 0 || top > window.innerHeight * 0.5)) {
    status.scrollIntoView({ block: "start" });
  }
  const shown = new Set(document.querySelectorAll(".validation-error"));
  const refused = new MutationObserver(() => {
    const reason = [...document.querySelectorAll(".validation-error")].find((node) => !shown.has(node));
    if (reason) {
      reason.scrollIntoView({ block: "center" });
      refused.disconnect();
    }
  });
  refused.observe(document.body, { childList: true, subtree: true });
  setTimeout(() => refused.disconnect(), 60000);
  return [];
}
