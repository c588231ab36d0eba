"""Issues: the importers (plain text of the print layout, Markdown, JSON: a file in, an
:class:`~distributor.issues.document.IssueDocument` out, pure) and the store of issues.

Imports only the ground floor; never an engine, the subscriber store or a face.
"""
