"""Activities and their sessions, attendance, and each youth's participation."""
