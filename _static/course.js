/* What the course site does on top of its theme (sphinx-book-theme 1.3 on
 * pydata-sphinx-theme 0.17), in the reader's browser. Jupyter Book loads every script
 * under _static on every page; this one waits for the page to be parsed.
 *
 * - A link tapped in a drawer (the book's chapters under ☰, the page's sections under
 *   Contents: <dialog>s on narrow screens) closes the drawer, as on d2l's and
 *   QuantEcon's sites; before, the drawer stayed over the page it had scrolled.
 * - "Back to top" sits in the bar at the top of the page, beside ☰, instead of over the
 *   text near the bottom of the screen, where it covered headings.
 * - The comments and docstrings of a code block wrap at the block's right edge, each
 *   continuing under its own first column, so that a phone shows them whole ("# TODO
 *   Exercise 1.1: write your code here" was cut at "he"); a comment after code that
 *   leaves it too little room shows on a line of its own below that code. Only the
 *   layout changes: the text, and what the copy button copies, stay the same.
 * - A code block, an equation or a table wider than its column casts a shade on the
 *   side where more is hidden (classes course-more-left and course-more-right; see
 *   course.css): a reader sees that it scrolls.
 * - The page a search result opens highlights the words searched (Sphinx does so only
 *   where its search script is absent, and this theme loads it on every page).
 * - The arrow that opens a chapter's sections in the book's contents (a <summary> that
 *   holds only an icon) is named for screen readers: "Sections of <chapter>".
 */
"use strict";

(() => {
  const ready = (run) =>
    document.readyState === "loading"
      ? document.addEventListener("DOMContentLoaded", run)
      : run();

  function closeDrawersOnLinkTap() {
    for (const id of ["pst-primary-sidebar-modal", "pst-secondary-sidebar-modal"]) {
      const drawer = document.getElementById(id);
      if (!drawer) continue;
      drawer.addEventListener("click", (event) => {
        if (drawer.open && event.target.closest("a[href]")) {
          // once the browser has followed the link
          setTimeout(() => drawer.close(), 0);
        }
      });
    }
  }

  function backToTopInTheTopBar() {
    const button = document.getElementById("pst-back-to-top");
    const bar = document.querySelector(".bd-header-article .header-article-items__start");
    if (!button || !bar) return;
    bar.appendChild(button);
    button.classList.add("course-in-top-bar");
  }

  const READ_ME = ".c, .c1, .ch, .cm, .sd"; // comments and docstrings (Pygments)
  const MIN_ROOM = 12; // characters: a comment that starts further right scrolls

  /* A docstring is one span per line (or one span over several lines), each line's
   * indentation inside it: one span per line, its indentation outside, so that each
   * line wraps under its own first column. */
  function oneSpanPerLine(pre) {
    for (const span of pre.querySelectorAll(".sd")) {
      const lines = span.textContent.split("\n");
      if (lines.length < 2 && !/^\s/.test(lines[0])) continue;
      const pieces = [];
      lines.forEach((line, index) => {
        if (index) pieces.push("\n");
        const indent = line.match(/^\s*/)[0];
        if (indent) pieces.push(indent);
        if (line.length > indent.length) {
          const part = document.createElement("span");
          part.className = span.className;
          part.textContent = line.slice(indent.length);
          pieces.push(part);
        }
      });
      span.replaceWith(...pieces);
    }
  }

  /* Where each comment of the blocks stands: whether it runs past the block's right
   * edge, how much room it has before that edge (in px), and, for a comment after code,
   * the indentation of its line. */
  function measureComments(pres) {
    const found = [];
    for (const pre of pres) {
      // in the block's own coordinates: 0 is the left of its padding box, scrolled to 0
      const box = pre.getBoundingClientRect();
      const style = getComputedStyle(pre);
      const origin = box.left + pre.clientLeft - pre.scrollLeft;
      const edge = pre.clientWidth - parseFloat(style.paddingRight);
      const least = MIN_ROOM * parseFloat(style.fontSize) * 0.6;
      for (const span of pre.querySelectorAll(READ_ME)) {
        const rect = span.getBoundingClientRect();
        const before = document.createRange();
        before.setStart(pre, 0);
        before.setEndBefore(span);
        const text = before.toString();
        const line = text.slice(text.lastIndexOf("\n") + 1);
        found.push({
          span,
          overflows: rect.right - origin > edge + 0.5,
          room: edge - (rect.left - origin),
          least,
          indent: line.match(/^\s*/)[0],
          afterCode: line.trim() !== "",
        });
      }
    }
    return found;
  }

  /* Measure every comment of the blocks first, then change them: a few layouts, not one
   * per comment. A comment with room enough wraps where it stands; one after code, too
   * near the edge, first moves to a line of its own below that code, indented (by
   * generated content, which is neither copied nor selected). */
  function wrapComments(pres) {
    const shown = pres.filter((pre) => pre.getClientRects().length);
    for (const pre of shown) {
      for (const span of pre.querySelectorAll(".course-wraps")) {
        span.classList.remove("course-wraps");
        span.style.maxWidth = "";
      }
      for (const line of pre.querySelectorAll(".course-own-line")) {
        line.replaceWith(...line.childNodes);
      }
    }
    let found = measureComments(shown);
    const cramped = found.filter((c) => c.overflows && c.room < c.least && c.afterCode);
    for (const { span, indent } of cramped) {
      const line = document.createElement("span");
      line.className = "course-own-line";
      line.dataset.indent = `${indent}    `;
      span.replaceWith(line);
      line.appendChild(span);
    }
    if (cramped.length) found = measureComments(shown);
    for (const { span, overflows, room, least } of found) {
      if (overflows && room >= least) {
        span.classList.add("course-wraps");
        span.style.maxWidth = `${Math.floor(room)}px`;
      }
    }
  }

  function markOverflow(block) {
    const hidden = block.scrollWidth - block.clientWidth;
    block.classList.toggle("course-more-left", hidden > 1 && block.scrollLeft > 1);
    block.classList.toggle("course-more-right", hidden > 1 && block.scrollLeft < hidden - 1);
  }

  const widths = new WeakMap();
  const resized = new ResizeObserver((entries) => {
    const pres = [];
    for (const { target, contentRect } of entries) {
      if (target.matches("pre") && widths.get(target) !== contentRect.width) {
        widths.set(target, contentRect.width);
        pres.push(target);
      }
    }
    if (pres.length) wrapComments(pres);
    for (const { target } of entries) markOverflow(target);
  });

  function watch(block) {
    if (block.dataset.courseWatched) return;
    block.dataset.courseWatched = "yes";
    block.addEventListener("scroll", () => markOverflow(block), { passive: true });
    resized.observe(block);
  }

  function watchBlocks() {
    const pres = [...document.querySelectorAll("article pre")];
    pres.forEach(oneSpanPerLine);
    pres.forEach(watch);
    document.querySelectorAll("article .pst-scrollable-table-container").forEach(watch);
  }

  function watchEquations() {
    const equations = () =>
      document.querySelectorAll("article mjx-container[display='true']").forEach(watch);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(equations);
    }
  }

  function highlightSearchedWords() {
    const onSearchPage = DOCUMENTATION_OPTIONS.pagename === "search";
    if (!onSearchPage && typeof Search !== "undefined" && typeof SphinxHighlight !== "undefined") {
      SphinxHighlight.highlightSearchWords();
    }
  }

  function nameSectionToggles() {
    for (const summary of document.querySelectorAll("li.has-children > details > summary")) {
      const chapter = summary.parentElement.parentElement.querySelector(":scope > a");
      if (chapter && !summary.textContent.trim()) {
        summary.setAttribute("aria-label", `Sections of ${chapter.textContent.trim()}`);
      }
    }
  }

  ready(() => {
    nameSectionToggles();
    closeDrawersOnLinkTap();
    backToTopInTheTopBar();
    watchBlocks();
    highlightSearchedWords();
  });
  // MathJax loads asynchronously; it has typeset the page once the page has loaded
  window.addEventListener("load", watchEquations);
})();
