"""Drape: recommendations with virtual try-on previews.

One import root for the whole product (pyproject.toml maps the top-level folders into it):
``drape.v1`` (API stubs, generated next to protos/), ``drape.services`` (the microservices),
``drape.models``, ``drape.recsys``, ``drape.catalog``, ``drape.synthetic`` and ``drape.cli``.
"""
