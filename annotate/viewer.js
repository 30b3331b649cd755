// The review screen's viewer: tile pyramids of the original, the retouch (in the original's frame)
// and their difference, drawn as <img> tiles on a stage; no library. Markup and state live in #ab-viewer.
//
// Zoom is "fit" or a multiple of 100%, where 100% is one image pixel per device pixel. Zoom and the
// image point at the stage's centre are one state for every stage: flipping, side by side and the
// difference view all keep the viewport. The 100% crops of every face are small stages at 100% on
// boxes of the original's pixels, showing whichever side the main view shows (flipped with it).
// Tiles come from the app's checked tile route (spec.base holds the reviewer's token); the browser
// caches them, since a tile never changes under its URL.
window.AnnotateViewer = (() => {
  const ZOOM_STEPS = [0.25, 0.5, 1, 2, 4, 8];
  const CROP_MAX = {width: 300, height: 200};
  const LOUPE_SIZE = 260;
  const LABELS = {original: 'ORIGINAL', retouched: 'RETOUCH', difference: 'DIFFERENCE ×8'};
  const REGION_NAMES = {eyes: 'eyes', mouth: 'mouth', left_cheek: 'left cheek', right_cheek: 'right cheek', forehead: 'forehead'};
  const dpr = () => window.devicePixelRatio || 1;

  // The pyramid level whose pixels are at least as fine as the screen's at ``scale`` (CSS px per image px).
  const levelFor = (pyramid, scale) =>
    Math.max(0, Math.min(pyramid.levels - 1, Math.floor(Math.log2(1 / (scale * dpr())) + 1e-6)));
  const tileUrl = (spec, id) => new URL(`${spec.base}${id}.jpg`, window.location.href).href;

  const element = (tag, className, parent) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (parent) parent.appendChild(node);
    return node;
  };

  // A stage: a clipping box holding the tiles of one pyramid at one view ({scale, cx, cy}).
  class Stage {
    constructor(node) { this.node = node; this.tiles = new Map(); }

    draw(spec, side, view) {
      const pyramid = spec.sides[side];
      const width = this.node.clientWidth, height = this.node.clientHeight;
      const scale = view.scale;
      // image pixel at the stage's top-left corner, snapped so that tiles land on whole screen pixels
      const left = Math.round((view.cx - width / (2 * scale)) * scale) / scale;
      const top = Math.round((view.cy - height / (2 * scale)) * scale) / scale;
      // the stage may sit at a fractional page position (text above it): shift the tiles onto whole device pixels
      const box = this.node.getBoundingClientRect();
      const snapX = (Math.round(box.left * dpr()) - box.left * dpr()) / dpr();
      const snapY = (Math.round(box.top * dpr()) - box.top * dpr()) / dpr();
      const wanted = new Set();
      const place = (level, column, row) => {
        const id = `${pyramid.key}/${level}/${column}_${row}`;
        wanted.add(id);
        let img = this.tiles.get(id);
        if (!img) {
          img = element('img', 'ab-tile', this.node);
          img.draggable = false;
          img.alt = '';
          img.dataset.level = level;
          img.src = tileUrl(spec, id);
          this.tiles.set(id, img);
        }
        const factor = 2 ** level;
        const levelWidth = Math.ceil(pyramid.width / factor), levelHeight = Math.ceil(pyramid.height / factor);
        const x0 = column * pyramid.tile * factor, y0 = row * pyramid.tile * factor;
        const x1 = Math.min(levelWidth, (column + 1) * pyramid.tile) * factor;
        const y1 = Math.min(levelHeight, (row + 1) * pyramid.tile) * factor;
        const sx0 = Math.round((x0 - left) * scale), sy0 = Math.round((y0 - top) * scale);
        img.style.left = `${sx0 + snapX}px`;
        img.style.top = `${sy0 + snapY}px`;
        img.style.width = `${Math.round((Math.min(x1, pyramid.width) - left) * scale) - sx0}px`;
        img.style.height = `${Math.round((Math.min(y1, pyramid.height) - top) * scale) - sy0}px`;
        img.style.zIndex = String(pyramid.levels - level);
      };
      const coarsest = pyramid.levels - 1;
      place(coarsest, 0, 0); // always there at once: the whole image, blurred until the detail arrives
      const level = levelFor(pyramid, scale);
      if (level < coarsest) {
        const span = pyramid.tile * 2 ** level; // image pixels per tile
        const columns = Math.ceil(pyramid.width / span), rows = Math.ceil(pyramid.height / span);
        const c0 = Math.max(0, Math.floor(left / span)), c1 = Math.min(columns - 1, Math.floor((left + width / scale) / span));
        const r0 = Math.max(0, Math.floor(top / span)), r1 = Math.min(rows - 1, Math.floor((top + height / scale) / span));
        for (let row = r0; row <= r1; row++) for (let column = c0; column <= c1; column++) place(level, column, row);
      }
      for (const [id, img] of this.tiles) {
        if (!wanted.has(id)) { img.remove(); this.tiles.delete(id); }
      }
      this.node.classList.toggle('ab-pixelated', scale * dpr() > 1.01);
      Object.assign(this.node.dataset, {left: String(left), top: String(top), side});
    }

    clear() { for (const img of this.tiles.values()) img.remove(); this.tiles.clear(); }
  }

  class Viewer {
    constructor(root) {
      this.root = root;
      this.spec = null;
      this.regions = null;
      this.state = {side: 'original', mode: 'flip', zoom: 'fit', cx: 0, cy: 0, loupe: false};
      root.innerHTML = '';
      const bar = element('div', 'ab-toolbar', root);
      this.label = element('span', 'ab-label', bar);
      const buttons = [
        ['Flip (F)', () => this.flip()], ['Side by side (B)', () => this.setMode('side')],
        ['Difference (D)', () => this.setMode('diff')], ['Fit (0)', () => this.zoomTo('fit')],
        ['100%', () => this.zoomTo(1)], ['200%', () => this.zoomTo(2)], ['Loupe (L)', () => this.toggleLoupe()],
      ];
      for (const [text, action] of buttons) {
        const button = element('button', 'ab-button', bar);
        button.type = 'button';
        button.textContent = text;
        button.addEventListener('click', action);
      }
      this.zoomLabel = element('span', 'ab-zoom-label', bar);
      this.notice = element('div', 'ab-notice', root);
      const stages = element('div', 'ab-stages', root);
      this.main = new Stage(element('div', 'ab-stage ab-main', stages));
      this.second = new Stage(element('div', 'ab-stage ab-second', stages));
      this.stages = stages;
      this.empty = element('p', 'ab-empty', root);
      this.crops = element('div', 'ab-crops', root);
      this.cropStages = [];
      this.loupe = new Stage(element('div', 'ab-stage ab-loupe', root));
      this.loupe.node.style.width = this.loupe.node.style.height = `${LOUPE_SIZE}px`;
      for (const stage of [this.main, this.second]) this.listen(stage);
      window.addEventListener('resize', () => this.layout());
      this.sync();
    }

    // -- what is shown ----------------------------------------------------------------------
    show(spec) {
      const samePair = this.spec && spec && spec.pair === this.spec.pair;
      this.spec = spec && spec.pair ? spec : null;
      this.empty.textContent = spec && spec.empty ? spec.empty : (this.spec ? '' : 'No pair open.');
      if (!samePair) {
        this.regions = null;
        Object.assign(this.state, {side: 'original', zoom: 'fit'});
        if (this.spec) Object.assign(this.state, {cx: this.spec.sides.original.width / 2, cy: this.spec.sides.original.height / 2});
        for (const stage of [this.main, this.second, this.loupe, ...this.cropStages]) stage.clear();
        this.buildCrops();
      }
      this.notice.textContent = this.spec && this.spec.notice ? `⚠ ${this.spec.notice}` : '';
      this.layout();
      if (this.spec) this.preload(this.spec, this.spec.next || []);
    }

    // The fit view of the reviewer's next pairs, fetched now into the browser's cache: the next key shows it at once.
    preload(spec, upcoming) {
      this.preloaded = [];
      const ids = [];
      const node = this.main.node;
      for (const {original: pyramid} of upcoming) {
        const level = levelFor(pyramid, Math.min(node.clientWidth / pyramid.width, node.clientHeight / pyramid.height));
        const span = pyramid.tile * 2 ** level;
        ids.push(`${pyramid.key}/${pyramid.levels - 1}/0_0`);
        for (let row = 0; row < Math.ceil(pyramid.height / span); row++) {
          for (let column = 0; column < Math.ceil(pyramid.width / span); column++) ids.push(`${pyramid.key}/${level}/${column}_${row}`);
        }
      }
      for (const id of ids) {
        const img = new Image();
        img.src = tileUrl(spec, id);
        this.preloaded.push(img);
      }
    }

    setRegions(regions) {
      this.regions = regions && this.spec && regions.pair === this.spec.pair ? regions : null;
      this.buildCrops();
      this.layout();
    }

    buildCrops() {
      for (const stage of this.cropStages) stage.clear();
      this.crops.innerHTML = '';
      this.cropStages = [];
      if (!this.regions) return;
      if (this.regions.problem) element('p', 'ab-crops-problem', this.crops).textContent = `No crops: ${this.regions.problem}`;
      this.regions.faces.forEach((face, index) => {
        for (const [name, box] of Object.entries(face)) {
          const panel = element('figure', 'ab-crop', this.crops);
          const node = element('div', 'ab-stage ab-crop-stage', panel);
          node.style.width = `${Math.min(CROP_MAX.width, Math.ceil((box[2] - box[0]) / dpr()))}px`;
          node.style.height = `${Math.min(CROP_MAX.height, Math.ceil((box[3] - box[1]) / dpr()))}px`;
          node.dataset.region = name;
          node.dataset.face = String(index + 1);
          element('figcaption', '', panel).textContent = `face ${index + 1} · ${REGION_NAMES[name] || name} · 100%`;
          const stage = new Stage(node);
          stage.box = box;
          this.listen(stage, true);
          this.cropStages.push(stage);
        }
      });
    }

    // -- state changes (each redraws every stage) ----------------------------------------------
    flip() {
      if (this.state.mode !== 'flip') this.state.mode = 'flip';
      else this.state.side = this.state.side === 'original' ? 'retouched' : 'original';
      this.sync();
    }

    setMode(mode) { this.state.mode = this.state.mode === mode ? 'flip' : mode; this.layout(); }

    zoomTo(zoom, anchor) {
      if (!this.spec) return;
      const before = this.scale();
      this.state.zoom = zoom;
      if (zoom === 'fit') {
        this.state.cx = this.spec.sides.original.width / 2;
        this.state.cy = this.spec.sides.original.height / 2;
      } else if (anchor) { // keep the image point under the pointer where it is
        const after = this.scale();
        this.state.cx = anchor.x + (this.state.cx - anchor.x) * before / after;
        this.state.cy = anchor.y + (this.state.cy - anchor.y) * before / after;
      }
      this.sync();
    }

    // +/- and the wheel: the next step of ZOOM_STEPS, or fit below it; ``anchor`` stays under the pointer
    zoomStep(direction, anchor) {
      const current = this.scale() * dpr();
      const next = direction > 0
        ? ZOOM_STEPS.find((step) => step > current + 1e-6)
        : [...ZOOM_STEPS].reverse().find((step) => step < current - 1e-6);
      if (next === undefined || (direction < 0 && next < this.fitScale() * dpr())) this.zoomTo('fit');
      else this.zoomTo(next, anchor);
    }

    // z: fit -> 100% -> 200% -> fit
    cycleZoom() { this.zoomTo(this.state.zoom === 'fit' ? 1 : this.state.zoom === 1 ? 2 : 'fit'); }

    toggleLoupe() { this.state.loupe = !this.state.loupe; if (!this.state.loupe) this.loupe.node.style.display = 'none'; this.sync(); }

    // -- geometry ---------------------------------------------------------------------------------
    fitScale() {
      if (!this.spec) return 1;
      const {width, height} = this.spec.sides.original;
      const node = this.main.node;
      return Math.min(node.clientWidth / width, node.clientHeight / height);
    }

    scale() { return this.state.zoom === 'fit' ? this.fitScale() : this.state.zoom / dpr(); }

    view() { return {scale: this.scale(), cx: this.state.cx, cy: this.state.cy}; }

    shownSide(stage) {
      if (this.state.mode === 'diff') return 'difference';
      if (this.state.mode === 'side') return stage === this.second ? 'retouched' : 'original';
      return this.state.side;
    }

    layout() {
      const side = this.state.mode === 'side';
      this.root.dataset.mode = this.state.mode;
      this.second.node.style.display = side && this.spec ? '' : 'none';
      this.stages.style.display = this.spec ? '' : 'none';
      const top = this.stages.getBoundingClientRect().top + window.scrollY;
      const below = this.cropStages.length ? CROP_MAX.height + 48 : 0;
      const height = Math.max(400, Math.min(window.innerHeight - 24, window.innerHeight - top - below - 16));
      this.stages.style.height = `${height}px`;
      this.sync();
    }

    sync() {
      const state = this.state;
      if (this.spec && state.zoom !== 'fit') { // keep the centre on the image
        state.cx = Math.min(Math.max(state.cx, 0), this.spec.sides.original.width);
        state.cy = Math.min(Math.max(state.cy, 0), this.spec.sides.original.height);
      }
      Object.assign(this.root.dataset, {
        side: state.side, zoom: String(state.zoom), cx: String(Math.round(state.cx)), cy: String(Math.round(state.cy)),
        loupe: String(state.loupe), pair: this.spec ? this.spec.pair : '',
      });
      const shown = this.spec ? (state.mode === 'side' ? 'ORIGINAL | RETOUCH' : LABELS[this.shownSide(this.main)]) : '';
      this.label.textContent = shown;
      this.zoomLabel.textContent = this.spec ? (state.zoom === 'fit' ? `fit (${Math.round(this.scale() * dpr() * 100)}%)` : `${state.zoom * 100}%`) : '';
      if (!this.spec) return;
      this.main.draw(this.spec, this.shownSide(this.main), this.view());
      if (state.mode === 'side') this.second.draw(this.spec, 'retouched', this.view());
      for (const stage of this.cropStages) {
        const [x0, y0, x1, y1] = stage.box;
        stage.draw(this.spec, this.shownSide(this.main), {scale: 1 / dpr(), cx: (x0 + x1) / 2 + (stage.pan?.x || 0), cy: (y0 + y1) / 2 + (stage.pan?.y || 0)});
      }
    }

    // -- pointer: drag pans (crops pan on their own), wheel zooms, the loupe follows ----------------------
    listen(stage, isCrop = false) {
      let drag = null;
      stage.node.addEventListener('pointerdown', (event) => {
        drag = {x: event.clientX, y: event.clientY};
        stage.node.setPointerCapture(event.pointerId);
      });
      stage.node.addEventListener('pointerup', () => { drag = null; });
      stage.node.addEventListener('pointermove', (event) => {
        if (!this.spec) return;
        if (drag) {
          const scale = isCrop ? 1 / dpr() : this.scale();
          const dx = (event.clientX - drag.x) / scale, dy = (event.clientY - drag.y) / scale;
          drag = {x: event.clientX, y: event.clientY};
          if (isCrop) stage.pan = {x: (stage.pan?.x || 0) - dx, y: (stage.pan?.y || 0) - dy};
          else if (this.state.zoom !== 'fit') { this.state.cx -= dx; this.state.cy -= dy; }
          this.sync();
        }
        if (this.state.loupe && !isCrop) this.moveLoupe(stage, event);
      });
      stage.node.addEventListener('pointerleave', () => { this.loupe.node.style.display = 'none'; });
      if (!isCrop) {
        stage.node.addEventListener('wheel', (event) => {
          if (!this.spec) return;
          event.preventDefault();
          this.zoomStep(event.deltaY < 0 ? 1 : -1, this.imagePoint(stage, event));
        }, {passive: false});
      }
    }

    imagePoint(stage, event) {
      const rect = stage.node.getBoundingClientRect();
      const scale = this.scale();
      return {
        x: this.state.cx + (event.clientX - rect.left - rect.width / 2) / scale,
        y: this.state.cy + (event.clientY - rect.top - rect.height / 2) / scale,
      };
    }

    moveLoupe(stage, event) {
      const point = this.imagePoint(stage, event);
      const node = this.loupe.node;
      const rootRect = this.root.getBoundingClientRect();
      node.style.display = 'block';
      node.style.left = `${event.clientX - rootRect.left - LOUPE_SIZE / 2}px`;
      node.style.top = `${event.clientY - rootRect.top - LOUPE_SIZE / 2}px`;
      const scale = Math.max(2 / dpr(), 2 * this.scale()); // 200%, or twice the view when zoomed further
      this.loupe.draw(this.spec, this.shownSide(stage), {scale, cx: point.x, cy: point.y});
    }
  }

  return Viewer;
})();
