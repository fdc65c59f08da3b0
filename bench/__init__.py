"""The platform's benchmarks (``make bench``, ``python -m bench``): outside the product, which
they import and which never imports them; not in the wheel."""
