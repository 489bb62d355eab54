"""The candidate-pipeline framework and home-mixer stages (issue "The For You pipeline")."""
