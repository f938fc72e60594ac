/**
 * Fed-SB's gradient init phase (docs/protocol.md, "Fed-SB's init phase"; aggregation/fedsb-init.ts):
 * before round 0 the selected clients send, per module, their summed gradient w.r.t. W0; the sum
 * makes the job's initial global state (LoRA-SB's frozen A, B and R0), which the runner commits as
 * round 0's starting point with the release's DP booked on each participant's client account.
 * The phase collects plainly or securely like any round (update-collector.ts).
 */
import { STRATEGY_TRAITS, type JobSpec, type ModuleShape } from '../../shared/protocol/job-spec.js';
import type { Plan } from '../../shared/protocol/events.js';
import type { ClientInfo, ClientPlan, JobSpec as StrategyJobSpec, RoundAggregation, RoundResult } from '../../aggregation/strategy.js';
import type { ClientSampling } from '../../privacy/client-sampling.js';
import { FedSbGradientSum, fedsbInitStep } from '../../aggregation/fedsb-init.js';
import { gradientsFromSum } from '../../aggregation/secure-sum.js';
import { strategySpecOf } from '../jobs.js';
import { FEDSB_GRADIENT_SUFFIX } from './update-decoder.js';
import type { Attempt, AttemptPhase, Collected, Committer } from './attempt.js';
import type { JobPrivacy } from './job-privacy.js';

/** Whether the job's initial state is Fed-SB's gradient init (made in an init phase before round 0). */
export function usesGradientInit(spec: JobSpec): boolean {
  return STRATEGY_TRAITS[spec.strategy].gradientInit && spec.fedsb?.init === 'gradient';
}

export class FedSbInitPhase implements AttemptPhase {
  readonly kind = 'fedsb-init';
  readonly label = 'fedsb-init';
  readonly recordsUpdates = false;
  readonly failure = 'fedsb init could not be aggregated or committed';
  private readonly strategySpec: StrategyJobSpec;

  constructor(
    private readonly spec: JobSpec,
    layout: readonly ModuleShape[],
    private readonly privacy: JobPrivacy,
  ) {
    this.strategySpec = strategySpecOf(spec, layout);
  }

  checkBudget(_sampling: ClientSampling, _expected: number): void {
    this.privacy.checkInitRelease();
  }

  plans(clients: readonly ClientInfo[]): ClientPlan[] {
    const { variant, trainable } = STRATEGY_TRAITS[this.spec.strategy];
    return clients.map((c) => ({ clientId: c.id, modules: this.strategySpec.modules, variant, trainable, start: 'global', mergeFirst: null }));
  }

  /**
   * The init phase's plan: send, per module, the summed gradient w.r.t. W0 over `samples` local
   * examples as `base_model.model.<path>.fedsb_G.weight` [m, n]; with `dp`, clip each example's
   * gradient to `clip` and add N(0, (noiseMultiplier clip)^2).
   */
  offerPlan(plan: Plan): Plan {
    const f = this.spec.fedsb!;
    const updateTensors = plan.modules.map((m) => ({ name: `base_model.model.${m.path}${FEDSB_GRADIENT_SUFFIX}`, shape: [m.outFeatures, m.inFeatures] }));
    const dp = f.noiseMultiplier === undefined ? undefined : { clip: f.clip, noiseMultiplier: f.noiseMultiplier };
    return { ...plan, updateTensors, extra: { phase: 'fedsb-init', samples: f.samples, ...(dp !== undefined && { dp }) } };
  }

  /** LoRA-SB: G' = -eta sign(G), eta the first step's learning rate (lr / warmupSteps under warmup). */
  begin(): RoundAggregation {
    return new FedSbGradientSum(this.strategySpec, String(this.spec.seed), fedsbInitStep(this.spec.training));
  }

  fromSecureSum(sum: Float64Array, _tensors: Plan['updateTensors'], survivors: number): RoundResult {
    const gradients = this.begin() as FedSbGradientSum;
    // the plan's gradient tensors follow the spec's modules (offerPlan), as gradientsFromSum reads them
    gradients.addSum(gradientsFromSum(this.strategySpec.modules, sum), 'the secure sum', survivors);
    return gradients.finish();
  }

  commit(runner: Committer, a: Attempt, _reason: 'quorum' | 'deadline', collected: Collected): void {
    runner.commitInitialState(a, collected, this.privacy.bookInitRelease(collected.participants));
  }
}
