"""Functions, a method, a nested class's method and a nested function, for the pattern table."""


def checkout(spin):
    spin()


class Cart:
    def total(self, spin):
        spin()


class Outer:
    class Worker:
        def process(self, spin):
            spin()


def outer(spin):
    def inner():
        spin()

    spin()
    inner()
