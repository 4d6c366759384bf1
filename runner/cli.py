"""The commands' argument parser: a bad command line is one line naming the problem (no usage block)."""

import argparse


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
