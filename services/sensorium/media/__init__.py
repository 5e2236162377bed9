"""Media engines: text in images (`text`), video frames at scene changes (`video`), photo
formats and capture times (`photos`). Pure library code: no gRPC, no settings object."""
