/** The digits data of the repo, split the way the experiments split it (helpers for the client tests). */
import { loadCsv } from '../../client/data/csv.js';
import { trainTestSplit } from '../../client/data/split.js';
import { indicesWithLabels, subset, type ClassificationTable } from '../../client/data/table.js';

export interface DigitsParts {
  /** labels 0-4: the "public" part the base model is pre-trained on */
  lowTrain: ClassificationTable;
  lowTest: ClassificationTable;
  /** labels 5-9: what LoRA fine-tuning learns */
  highTrain: ClassificationTable;
  highTest: ClassificationTable;
}

export async function digitsParts(testFraction = 0.25, seed = 0): Promise<DigitsParts> {
  const digits = await loadCsv('simulations/data/digits.csv.gz', { header: false });
  const split = trainTestSplit(digits.labels.length, testFraction, seed);
  const train = subset(digits, split.train);
  const test = subset(digits, split.test);
  const low = new Set([0, 1, 2, 3, 4]);
  const high = new Set([5, 6, 7, 8, 9]);
  return {
    lowTrain: subset(train, indicesWithLabels(train.labels, low)),
    lowTest: subset(test, indicesWithLabels(test.labels, low)),
    highTrain: subset(train, indicesWithLabels(train.labels, high)),
    highTest: subset(test, indicesWithLabels(test.labels, high)),
  };
}
