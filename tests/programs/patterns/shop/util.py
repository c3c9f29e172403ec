"""Names that collide with shop.orders' (not re-exported by the package)."""


def checkout(spin):
    spin()


class Worker:
    def process(self, spin):
        spin()
