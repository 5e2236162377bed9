"""The document engine: Office, OpenDocument, RTF, EPUB, HTML, text, CSV, subtitles and mail,
as sections of text with locators a person can follow (`sensorium.document.engine`)."""
