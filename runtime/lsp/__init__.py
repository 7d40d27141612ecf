"""``netc lsp``: a Language Server Protocol server for netc specs, over stdio (pygls).

- :mod:`.analysis` checks an open file as ``netc check`` does (same loader, budgets and
  diagnostics), with the editor's unsaved texts, and keeps what each block made;
- :mod:`.positions` maps spans to LSP ranges and finds what is written at a place;
- :mod:`.hover`, :mod:`.navigation` (definitions, symbols, inlay hints) and :mod:`.completion`
  answer requests from an analysis;
- :mod:`.server` wires them to the protocol: a newer edit cancels an older check, and a result
  for an older text is never published.
"""
