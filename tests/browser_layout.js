// What a person would see as broken on the current page; `width` is the device's width (a
// phone widens its layout viewport to fit a page that is too wide, so the window's own width
// cannot tell). Returns a list of problems, empty when the page is fine. Used by
// browser_support.py (Audit.check).
(width) => {
  const problems = [];
  const describe = (el) => {
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim();
    const classes = typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().replace(/\s+/g, '.') : '';
    return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${classes}`
      + ` "${text.slice(0, 40)}"`;
  };
  // Rendered and visible; also skips what is only there for screen readers (1 px).
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 1 && box.height > 1 && getComputedStyle(el).visibility !== 'hidden';
  };
  const right = (el) => el.getBoundingClientRect().right;

  const page = document.documentElement;
  if (page.scrollWidth > width || window.innerWidth > width) {
    // The deepest elements sticking out (tables scroll inside their own box).
    const wide = [...document.body.querySelectorAll('*')].filter((el) => {
      const box = el.getBoundingClientRect();
      return shown(el) && (box.right > width + 0.5 || box.left < -0.5)
        && box.right > 0 && box.left < width && !el.closest('.table-wrap')
        && ![...el.children].some((child) => right(child) > width + 0.5);
    });
    problems.push(`scrolls sideways: ${Math.max(page.scrollWidth, window.innerWidth)}px wide,`
      + ` because of ${wide.slice(0, 5).map(describe).join('; ')}`);
  }

  const clips = (overflow) => overflow === 'hidden' || overflow === 'clip';
  for (const el of document.body.querySelectorAll('*')) {
    if (!shown(el)) continue;
    const style = getComputedStyle(el);
    if (clips(style.overflowX) && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`text cut off sideways: ${describe(el)}`);
    }
    if (clips(style.overflowY) && el.scrollHeight > el.clientHeight + 1) {
      problems.push(`text cut off at the bottom: ${describe(el)}`);
    }
    if (style.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`text ends in an ellipsis: ${describe(el)}`);
    }
  }

  const controls = 'button, .button, input[type=submit], select, textarea,'
    + ' input:not([type=hidden]):not([type=radio]):not([type=checkbox])';
  for (const el of document.querySelectorAll(controls)) {
    if (!shown(el) || el.closest('.table-wrap')) continue;
    const box = el.getBoundingClientRect();
    if (box.left < -0.5 || box.right > width + 0.5) {
      problems.push(`control outside the screen (${Math.round(box.left)}..`
        + `${Math.round(box.right)}): ${describe(el)}`);
    }
  }
  if (width <= 480) {  // a phone: every control is a 44 px tap target (house rule)
    for (const el of document.querySelectorAll(`${controls}, .main-nav a, summary`)) {
      if (!shown(el)) continue;
      const height = el.getBoundingClientRect().height;
      if (height < 43.5) problems.push(`tap target ${Math.round(height)} px high: ${describe(el)}`);
    }
  }

  // The menu starts on the reading side: the right in Arabic, the left otherwise.
  const nav = [...document.querySelectorAll('.main-nav a')].filter(shown);
  if (nav.length) {
    const first = nav[0].getBoundingClientRect();
    const row = nav.filter((a) => Math.abs(a.getBoundingClientRect().top - first.top) < 2);
    const rtl = page.dir === 'rtl';
    const starts = rtl ? row.every((a) => right(a) <= first.right + 0.5)
      : row.every((a) => a.getBoundingClientRect().left >= first.left - 0.5);
    const side = rtl ? first.right >= width / 2 : first.left <= width / 2;
    if (!starts || !side) {
      problems.push(`the menu does not start on the ${rtl ? 'right' : 'left'}`
        + ` (first link at ${Math.round(first.left)}..${Math.round(first.right)})`);
    }
  }
  return problems;
}
