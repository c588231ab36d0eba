"""Issues: the importers (plain text of the print layout, Markdown, JSON, Word/WPS .docx and
text PDF: a file in, an :class:`~distributor.issues.document.IssueDocument` out, pure; pictures
kept with it) and the store of issues.

Imports only the ground floor; never an engine, the subscriber store or a face.
"""
