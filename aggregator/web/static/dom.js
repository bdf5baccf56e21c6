// A small element builder: h("div", {class: "x", dataset: {hall: id}, onclick}, "text", child).
// Text always goes in as text (never parsed as HTML).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace the children of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

/** Run render() (which rebuilds el's children) and give the focus back to the element
 * with the same data-focus key, so keyboard users keep their place across live updates. */
export function keepFocus(el, render) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.focus : undefined;
  render();
  if (key) {
    const again = el.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
