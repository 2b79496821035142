// The exported replay page's script (replay_page.py inlines it): it paints the frames that Python worked out
// (rendering/frames.py) and plays them. It decides nothing about what a frame shows: every text, tooltip,
// class and colour comes from the embedded data, in which
//   items[i] = [text, tooltip index, look index in each of D.colourings]
//   looks.light[j] = looks.dark[j] = [class, background, cell fill]
//   runs[r] = {box, columns, width, text: the run's flowing text as item indices,
//              frames: [[how many of text's items show, cells]]}
// where a frame's cells are a list of items where its block's drawing begins, else {cell index: item}
// for the cells that changed since the frame before.
"use strict";
const $ = (id) => document.getElementById(id);
const D = JSON.parse($("replay").textContent);
const dark = typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
const LOOKS = dark ? D.looks.dark : D.looks.light;

function paint(tag, cls, text, tip, background) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  if (tip !== undefined) e.title = tip;
  if (background) e.style.background = background;
  return e;
}

function piece(item, colouring) {
  const [text, tip, ...looks] = D.items[item];
  const [cls, background, fill] = LOOKS[looks[colouring]];
  return {span: paint("span", cls, text, D.tips[tip], background), fill};
}

function makeRun(R) {
  const box = $(R.box);
  let at = -1, cells = [];
  function cellsAt(k) {
    let base = k;
    while (!Array.isArray(R.frames[base][1])) base--;
    if (at < base || at > k) { at = base; cells = R.frames[base][1].slice(); }
    for (; at < k; ) {
      at++;
      for (const [i, item] of Object.entries(R.frames[at][1])) cells[+i] = item;
    }
    return cells;
  }
  function render(k, colouring) {
    box.replaceChildren();
    R.text.slice(0, R.frames[k][0]).forEach((item) => box.append(piece(item, colouring).span));
    const shown = cellsAt(k);
    if (!shown.length) return;
    const grid = paint("div", "blockbox", "");
    grid.style.gridTemplateColumns = `repeat(${R.columns}, minmax(0, 1fr))`;
    grid.style.width = R.width;
    shown.forEach((item) => {
      const {span, fill} = piece(item, colouring);
      const cell = paint("div", "cell", "", undefined, fill);
      cell.append(span);
      grid.append(cell);
    });
    box.append(grid);
  }
  return {frames: R.frames.length, render};
}

const runs = D.runs.map(makeRun);
function render(k) {
  const colouring = D.colourings.indexOf($("colour").value);
  runs.forEach((r) => r.render(Math.min(k, r.frames - 1), colouring));
  $("where").textContent = D.labels[k];
}

function makePlayer(count, times, show) {
  const play = $("play"), slider = $("timeline"), pace = $("pace");
  slider.max = Math.max(0, count - 1);
  let timer = null, origin = 0;
  function stop() { clearInterval(timer); timer = null; play.textContent = "Play"; }
  function go(k) { slider.value = k; show(k); }
  function tick() {
    const k = +slider.value;
    if (k >= count - 1) return stop();
    let next = k + 1;
    if (+pace.value === 0) {  // real time: as far as the run's own clock has got
      const now = (performance.now() - origin) / 1000;
      while (next < count - 1 && times[next + 1] <= now) next++;
    }
    go(next);
  }
  function start() {
    origin = performance.now() - 1000 * times[Math.max(0, +slider.value)];
    timer = setInterval(tick, +pace.value ? 1000 / +pace.value : 16);
    play.textContent = "Pause";
  }
  play.onclick = () => {
    if (timer) return stop();
    if (+slider.value >= count - 1) go(0);
    start();
  };
  pace.onchange = () => { if (timer) { clearInterval(timer); start(); } };
  $("back").onclick = () => { stop(); go(Math.max(0, +slider.value - 1)); };
  $("forward").onclick = () => { stop(); go(Math.min(count - 1, +slider.value + 1)); };
  slider.oninput = () => { stop(); show(+slider.value); };
  $("colour").onchange = () => show(+slider.value);
  go(count - 1);
}
makePlayer(D.labels.length, D.times, render);
