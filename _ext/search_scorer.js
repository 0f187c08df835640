/* The site's search ranking (Sphinx's html_search_scorer; see course_site.py).
 *
 * Each word of a chapter's section titles is an index entry pointing at its section.
 * A result found through such an entry is shown as "Page > Section", and ranks above
 * the rest when the section's title has the searched word, higher still when the title
 * starts with it; results in chapters rank above exercises and solutions that use the
 * word. Otherwise Sphinx's own scores are kept. */
var Scorer = {
  score: (result) => {
    const [docname, title, anchor, , score] = result;
    const query = (new URLSearchParams(window.location.search).get("q") || "")
      .toLowerCase().trim();
    let boost = docname.startsWith("chapters/") ? 10 : 0;
    if (anchor && query && !title.includes(" > ")) {
      const file = Search._index.docnames.indexOf(docname);
      const id = anchor.slice(1);
      for (const [section, places] of Object.entries(Search._index.alltitles)) {
        if (places.some(([f, i]) => f === file && i === id)) {
          result[1] = `${title} > ${section}`;
          const words = section.toLowerCase().replace(/[^a-z0-9_ -]/g, " ").trim().split(/\s+/);
          const stem = query.replace(/(ing|es|s)$/, "");
          const at = words.findIndex((word) => word.startsWith(stem));
          if (at >= 0) boost += 100 - Math.min(at, 9) * 5;
          break;
        }
      }
    }
    return score + boost;
  },
  // Sphinx's defaults
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: { 0: 15, 1: 5, 2: -5 },
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
