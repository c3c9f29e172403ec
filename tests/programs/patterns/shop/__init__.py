"""A package that re-exports a function of one of its modules (as sympy exports factor)."""

from .orders import checkout  # noqa: F401  (re-exported: `shop.checkout`)


def open_shop(spin):
    spin()
