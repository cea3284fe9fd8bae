"""Surveys: XLSForm definitions, versions, filling and scoring, and the expression logic
of skip rules and constraints."""
