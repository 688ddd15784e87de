"""Document ingestion and retrieval for datasets: parse, clean, split, index, retrieve.

Each module does one step; `ingestion` runs the steps for one document, `documents` and
`datasets` are the API's side, `retrieval` answers queries.
"""
