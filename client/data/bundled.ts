/**
 * The data sets bundled with the package (simulations/data/, copied from Debian packages with their
 * licences there), as absolute paths resolved from this file, so that the commands' defaults work
 * from any working directory and from an installed package, not only from a clone's root.
 */
import { fileURLToPath } from 'node:url';

const bundled = (name: string): string => fileURLToPath(new URL(`../../simulations/data/${name}`, import.meta.url));

/** The UCI/scikit-learn handwritten digits (8x8 pixels, labels 0-9): `fedlora pretrain mlp`'s default. */
export const DIGITS_DATA = bundled('digits.csv.gz');

/** WordNet 3.0's glosses, one per line: `fedlora pretrain llama`'s default. */
export const WORDNET_DATA = bundled('wordnet-glosses.txt.gz');
