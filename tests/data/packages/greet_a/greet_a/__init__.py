"""Test package A (issue 14): says where it was imported from."""

import os
import sys

VERSION = "1.0"


def hello():
    return f"greet_a {VERSION} from {os.path.dirname(os.path.abspath(__file__))}"


def main():
    print(hello())
    print(f"prefix {sys.prefix}")
    return 0
