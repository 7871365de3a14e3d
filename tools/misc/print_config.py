"""Print the whole config, after ``_base_`` inheritance and ``--cfg-options``."""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.utils.cli import add_config_arguments, config_from_args  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Print the whole config')
    add_config_arguments(parser)
    parser.add_argument('--save-path', help='also save the resolved config to this file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args, init_scope=False)
    print(f'Config:\n{cfg.pretty_text}')
    if args.save_path is not None:
        if not args.save_path.endswith(('.py', '.json', '.yaml', '.yml')):
            raise ValueError('--save-path must end with .py, .json, .yaml or .yml')
        cfg.dump(args.save_path)
        print(f'Config saved to {args.save_path}')


if __name__ == '__main__':
    main()
