// The review screen's keys and the flip/zoom of its A/B viewer; run once per page (demo.load).
// Typing in a text field never triggers a decision.
() => {
  if (window.annotate) return;
  const click = (id) => document.getElementById(id)?.click();
  window.annotate = {
    // Both previews sit stacked in one scrolling stage, so flipping keeps the zoom and position.
    flip() {
      const viewer = document.getElementById('ab-viewer');
      if (!viewer) return;
      viewer.dataset.side = viewer.dataset.side === 'retouched' ? 'original' : 'retouched';
      viewer.querySelector('.ab-label').textContent = viewer.dataset.side === 'retouched' ? 'RETOUCH' : 'ORIGINAL';
    },
    zoom() {
      const viewer = document.getElementById('ab-viewer');
      if (viewer) viewer.dataset.zoom = viewer.dataset.zoom === 'fit' ? 'actual' : 'fit';
    },
  };
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable)) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'z') {
      event.preventDefault(); click('undo-button'); return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const buttons = {a: 'accept-button', r: 'reject-button', s: 'skip-button', u: 'undo-button', f: 'flip-button'};
    const id = buttons[event.key.toLowerCase()];
    if (id) { event.preventDefault(); click(id); }
  });
}
