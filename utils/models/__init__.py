"""One adapter per kind of model, each giving a `utils.core.model.Model`: TF1 graphs and sessions, Keras files.
"""
