"""Training-time methods of the explorer: keypoint-guided token budgets
(``core.training.token_budget``), used by the demo's training script."""
