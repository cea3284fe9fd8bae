"""Upward reporting: the indicator set and targets, the quarterly report workflow, the
year's release of suppressed figures, data-quality flags, donor exports and charts."""
