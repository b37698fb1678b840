"""The composite action (action.yml), run through a harness that keeps the runner's contract."""
