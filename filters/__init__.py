"""Pre- and post-selection filters of the For You pipeline (issue "The For You pipeline")."""
