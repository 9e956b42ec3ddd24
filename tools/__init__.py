"""Development tools that work on a checkout (stub generation, manifests, docs); not part of
the installed product."""
