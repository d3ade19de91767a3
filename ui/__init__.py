"""Streamlit-side helpers: the shared selection, cached resources, charts and views."""
