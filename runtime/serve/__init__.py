"""``netc serve SPEC``: a page on 127.0.0.1 that shows a spec live while it is edited.

- :mod:`.live` builds what the page shows from the spec as it is on disk (``netc draw``'s
  SVG, ``netc summary``'s table, ``netc check``'s located diagnostics), finds the files the
  spec reads (it and its includes), polls their times and sizes, and rebuilds on a change,
  waking the pages that wait for one;
- :mod:`.server` answers the page over HTTP (stdlib ``ThreadingHTTPServer``): the page itself,
  the SVG, and a long poll that returns as soon as a newer snapshot exists;
- :mod:`.page` is the page: HTML and a small script, no framework.
"""
