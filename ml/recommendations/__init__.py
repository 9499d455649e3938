"""Product recommendations: the models (``models``: EASE item-item, popularity, next-item
transitions, the MLflow pyfunc ``RecommenderModel``), how they fill the home, product and cart
placements (``placements``), ranking metrics (``ranking``), the MovieLens 100k benchmark
(``movielens``) and Spark MLlib ALS for data beyond one machine (``spark_als``)."""
