"""Test package B (issue 14): needs package A."""

import greet_a

VERSION = "2.0"


def main():
    print(f"greet_b {VERSION} with {greet_a.hello()}")
    return 0
