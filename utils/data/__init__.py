"""Datasets as lists of references read batch by batch: image folders and lists, and checked downloads.
"""
