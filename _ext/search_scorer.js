/* The site's search ranking (Sphinx's html_search_scorer; see course_site.py, which puts
 * COURSE_TITLE_NAMES before this file: for each chapter, the names and acronyms each
 * section title gives, by the section's id, "" for the page's own title).
 *
 * A result found through one of the course's index entries points at a section: it is
 * shown as "Page > Section" and ranks, from the top: a section whose title gives the
 * searched name in code (or as an acronym), then one whose title has the word (higher
 * the nearer the title's start), then the section whose text is the first to give the
 * name. Results in chapters rank above exercises and solutions that use the word.
 * Otherwise Sphinx's own scores are kept. */
var Scorer = {
  score: (result) => {
    const [docname, title, anchor, , score] = result;
    const query = (new URLSearchParams(window.location.search).get("q") || "")
      .toLowerCase().trim();
    const boost = docname.startsWith("chapters/") ? 10 : 0;
    const sections = (typeof COURSE_TITLE_NAMES !== "undefined" && COURSE_TITLE_NAMES[docname]);
    if (!query || !sections) return score + boost;
    const file = Search._index.docnames.indexOf(docname);
    const id = anchor.slice(1);
    const section = id ? Scorer.sectionTitle(file, id) : Search._index.titles[file];
    if (section === null) return score + boost;
    if (id && !title.includes(" > ")) result[1] = `${title} > ${section}`;
    if ((sections[id] || []).includes(query)) return score + boost + 300;
    const at = Scorer.wordAt(section, query);
    if (at >= 0) return score + boost + 200 - Math.min(at, 9) * 5;
    return score + boost + (id ? 100 : 0);
  },
  // The title of section `id` of the page numbered `file`, or null.
  sectionTitle: (file, id) => {
    for (const [section, places] of Object.entries(Search._index.alltitles)) {
      if (places.some(([f, i]) => f === file && i === id)) return section;
    }
    return null;
  },
  // Where in `title` the searched word comes (0 first), or -1: the word itself, or a
  // word that starts with it less a plural or -ing ending ("broadcasting" finds
  // "Broadcasting", "views" finds "Views").
  wordAt: (title, query) => {
    const words = title.toLowerCase().replace(/[^a-z0-9_ -]/g, " ").trim().split(/\s+/);
    const stem = query.replace(/(ing|es|s)$/, "");
    return words.findIndex((word) => word === query || word.startsWith(stem));
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
