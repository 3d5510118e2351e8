"""Running the stages over many videos: recipes, Dask execution, resumable per-video tasks."""
