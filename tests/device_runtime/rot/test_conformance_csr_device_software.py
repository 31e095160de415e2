"""The CSR check's device half for the software backend (see ``csr_on_device``). PORTABLE."""

from tests.device_runtime.rot.csr_on_device import make_and_print_csr

PORTABLE = True


def test_the_software_backend_makes_a_csr_for_its_identity_key() -> None:
    make_and_print_csr("software")
