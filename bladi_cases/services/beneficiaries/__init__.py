"""The registry of young people: registering and keeping a record, its validation rules,
search, spreadsheet imports and templates, and the rights of access and erasure."""
