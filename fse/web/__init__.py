"""Server-rendered pages shared by every section: base layout, landing page, offline API docs."""
