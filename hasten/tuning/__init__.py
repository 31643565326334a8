"""`hasten tune`: the levers chosen on the user's own task, within a pilot share of their
budget, with the evidence for each choice (`hasten.tuning.tuner`)."""
