"""The index job's building blocks: what a file is, how its text is cut, where rows are kept.

`sniff` tells a file's kind from its content; `chunking` cuts PDF page text and transcripts
into pieces that fit the embedding model's context; `layout` and `writer` keep the index on
disk (Parquet parts, a ledger per shard, manifests) and `reader` reads back its live rows;
`search` serves queries from an embedded LanceDB store built from the parts. None of these
modules loads a model: the job that feeds them owns the runtimes.
"""
