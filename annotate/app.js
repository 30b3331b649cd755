// The review screen's keys and the wiring of its viewer; run once per page (demo.load), after viewer.js.
// Typing in a text field never triggers a decision; Escape leaves the field.
() => {
  if (window.annotate) return;
  const click = (id) => document.getElementById(id)?.click();
  let viewer = null;
  const ensureViewer = () => {
    const root = document.getElementById('ab-viewer');
    if (root && (!viewer || viewer.root !== root)) viewer = new window.AnnotateViewer(root);
    return viewer;
  };
  const parse = (text) => { try { return text ? JSON.parse(text) : null; } catch { return null; } };
  const KEYS = [
    ['A / R / S', 'accept / reject / skip the pair'], ['U, Ctrl+Z', 'undo your last decision (caption and tags come back)'],
    ['F', 'flip original / retouch'], ['B', 'side by side'], ['D', 'difference (|A-B| ×8)'],
    ['Z', 'fit → 100% → 200%'], ['+ / -', 'zoom in / out'], ['0', 'fit'], ['L', 'loupe (200%)'],
    ['1-4', 'attribute tags'], ['C', 'caption'], ['Esc', 'leave a text field, close this help'], ['?', 'this help'],
  ];
  const help = () => {
    let panel = document.getElementById('ab-help');
    if (!panel) {
      panel = document.createElement('div');
      panel.id = 'ab-help';
      panel.hidden = true;
      const title = document.createElement('h3');
      title.textContent = 'Keys';
      panel.appendChild(title);
      const table = document.createElement('table');
      for (const [key, what] of KEYS) {
        const row = table.insertRow();
        row.insertCell().textContent = key;
        row.insertCell().textContent = what;
      }
      panel.appendChild(table);
      panel.addEventListener('click', () => { panel.hidden = true; });
      document.body.appendChild(panel);
    }
    return panel;
  };
  const toggleTag = (number) => document.querySelectorAll('#tags input[type=checkbox]')[number - 1]?.click();
  window.annotate = {
    show(text) { ensureViewer()?.show(parse(text)); },
    regions(text) { ensureViewer()?.setRegions(parse(text)); },
    viewer: () => ensureViewer(),
  };
  const actions = {
    a: () => click('accept-button'), r: () => click('reject-button'), s: () => click('skip-button'),
    u: () => click('undo-button'), f: () => viewer?.flip(), b: () => viewer?.setMode('side'),
    d: () => viewer?.setMode('diff'), z: () => viewer?.cycleZoom(), '+': () => viewer?.zoomStep(1),
    '=': () => viewer?.zoomStep(1), '-': () => viewer?.zoomStep(-1), 0: () => viewer?.zoomTo('fit'),
    l: () => viewer?.toggleLoupe(), c: () => document.querySelector('#caption textarea')?.focus(),
    '?': () => { const panel = help(); panel.hidden = !panel.hidden; },
    1: () => toggleTag(1), 2: () => toggleTag(2), 3: () => toggleTag(3), 4: () => toggleTag(4),
  };
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target && (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable);
    if (event.key === 'Escape') {
      if (typing) target.blur();
      help().hidden = true;
      return;
    }
    if (typing && !(target.type === 'checkbox' || target.type === 'radio')) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'z') {
      event.preventDefault(); click('undo-button'); return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (action) { event.preventDefault(); action(); }
  });
  ensureViewer();
}
