"""Case management: cases, needs, goals, notes, referrals, outcomes, and transfers of a
case between CSOs."""
