// The SDK's own logic, over a fake host (fake-host/): messages, params, query errors,
// dataset items, and how an eval's errors become sample errors.
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { fake, queryError } from "./fake-host/host.js";
import {
  Message,
  QueryFailed,
  Role,
  SampleError,
  SampleFailed,
  dataset,
  defineEval,
  isolation,
  model,
  scores,
} from "../src/index.js";
import { componentExports } from "../src/define.js";
import { runIsolated } from "../src/isolation.js";
import { toParams } from "../src/request.js";

beforeEach(() => {
  fake.items = [];
  fake.calls = [];
  fake.reports = [];
  fake.reply = () => ({ text: "4", finish: "stop", inputTokens: 4, outputTokens: 1 });
});

describe("messages", () => {
  test("the constructors give WIT message records", () => {
    assert.deepEqual(Message.user("hi"), { role: "user", content: "hi" });
    assert.deepEqual(Message.system("s"), { role: Role.System, content: "s" });
    assert.deepEqual(Message.assistant("a"), { role: "assistant", content: "a" });
  });

  test("a content that is not a string is a TypeError, not a silent conversion", () => {
    assert.throws(() => Message.user(42), TypeError);
    assert.throws(() => Message.user({ text: "hi" }), TypeError);
  });
});

describe("params", () => {
  test("left out fields take their defaults", () => {
    assert.deepEqual(toParams({}), { maxTokens: undefined, temperature: undefined, stop: [] });
    assert.deepEqual(toParams({ maxTokens: 16, temperature: 0, stop: ["\n"] }), {
      maxTokens: 16,
      temperature: 0,
      stop: ["\n"],
    });
  });

  test("a misspelt key is refused rather than ignored", () => {
    assert.throws(() => toParams({ max_tokens: 16 }), /unknown params key "max_tokens"/);
  });

  test("values the WIT types cannot carry are refused", () => {
    for (const bad of [{ maxTokens: -1 }, { maxTokens: 1.5 }, { maxTokens: 2 ** 32 }, { maxTokens: "16" }]) {
      assert.throws(() => toParams(bad), /maxTokens/, JSON.stringify(bad));
    }
    assert.throws(() => toParams({ temperature: Number.NaN }), /temperature/);
    assert.throws(() => toParams({ temperature: Infinity }), /temperature/);
    assert.throws(() => toParams({ stop: "\n" }), /stop/);
    assert.throws(() => toParams({ stop: [1] }), /stop/);
    assert.throws(() => toParams(null), TypeError);
    assert.throws(() => toParams([16]), TypeError);
  });

  test("the stop list is copied, so a later change by the eval does not alter the request", () => {
    const stop = ["a"];
    const params = toParams({ stop });
    stop.push("b");
    assert.deepEqual(params.stop, ["a"]);
  });
});

describe("model.complete", () => {
  test("sends the messages with the params filled in and returns the completion", () => {
    const reply = model.complete([Message.user("What is 2 + 2?")], { maxTokens: 16 });
    assert.equal(reply.text, "4");
    assert.deepEqual(fake.calls, [
      {
        messages: [{ role: "user", content: "What is 2 + 2?" }],
        params: { maxTokens: 16, temperature: undefined, stop: [] },
      },
    ]);
    model.complete([Message.user("again")]);
    assert.deepEqual(fake.calls[1].params, { maxTokens: undefined, temperature: undefined, stop: [] });
  });

  test("each query error becomes a QueryFailed with its kind, and rejected keeps the host's reason", () => {
    for (const [tag, val, sampleError] of [
      ["budget-exhausted", undefined, "budget-exhausted"],
      ["unavailable", undefined, "model-unavailable"],
      ["rejected", "prompt is 9 bytes; the policy allows 8", "failed"],
    ]) {
      fake.reply = () => {
        throw queryError(tag, val);
      };
      assert.throws(
        () => model.complete([Message.user("x")]),
        (e) => e instanceof QueryFailed && e.kind === tag && e.reason === val && e.sampleError === sampleError,
      );
    }
  });

  test("an error that is not a query error passes through unchanged", () => {
    const bug = new TypeError("cannot lower");
    fake.reply = () => {
      throw bug;
    };
    assert.throws(() => model.complete([Message.user("x")]), (e) => e === bug);
  });
});

describe("dataset and scores", () => {
  test("items are read as written, and itemJson parses them", () => {
    fake.items = ['{"a": 1, "b": 2}', "[1, 2]"];
    assert.equal(dataset.count(), 2);
    assert.equal(dataset.item(0), '{"a": 1, "b": 2}');
    assert.deepEqual(dataset.itemJson(0), { a: 1, b: 2 });
    assert.deepEqual(dataset.itemJson(1), [1, 2]);
  });

  test("a malformed item is SampleFailed(invalid-item)", () => {
    fake.items = ["{not json"];
    assert.throws(
      () => dataset.itemJson(0),
      (e) => e instanceof SampleFailed && e.error === SampleError.InvalidItem,
    );
  });

  test("scores go to the host as reported", () => {
    scores.report("accuracy", 1);
    assert.deepEqual(fake.reports, [["accuracy", 1]]);
  });
});

describe("errors", () => {
  test("SampleFailed and QueryFailed take only the WIT's cases", () => {
    assert.throws(() => new SampleFailed("timeout"), TypeError);
    assert.throws(() => new QueryFailed("refused"), TypeError);
    assert.equal(new SampleFailed(SampleError.Failed).error, "failed");
    assert.ok(new SampleFailed("failed") instanceof Error);
  });
});

describe("defineEval and the component's exports", () => {
  const info = { name: "t", version: "1", metrics: [{ name: "m", description: "", min: 0, max: 1 }] };
  const exportsOf = (runSample) => componentExports(defineEval({ describe: () => info, runSample }));
  const thrown = (f) => {
    try {
      f();
    } catch (e) {
      return e;
    }
    assert.fail("nothing was thrown");
  };

  test("an eval without describe or runSample is refused", () => {
    assert.throws(() => defineEval({ describe() {} }), /runSample must be a function/);
    assert.throws(() => defineEval({ runSample() {} }), /describe must be a function/);
    assert.throws(() => defineEval(null), TypeError);
  });

  test("a default export not made by defineEval is refused", () => {
    assert.throws(() => componentExports({ describe() {}, runSample() {} }), /defineEval/);
    assert.throws(() => componentExports(undefined), /defineEval/);
  });

  test("describe and runSample are called as methods of the definition", () => {
    const seen = [];
    const exported = componentExports(
      defineEval({
        info,
        describe() {
          return this.info;
        },
        runSample(index) {
          seen.push([this.info.name, index]);
        },
      }),
    );
    assert.equal(exported.describe(), info);
    assert.equal(exported.runSample(3), undefined);
    assert.deepEqual(seen, [["t", 3]]);
  });

  test("SampleFailed ends the sample with its error, thrown as the string componentize-js lowers", (t) => {
    const logged = t.mock.method(console, "error", () => {});
    for (const error of Object.values(SampleError)) {
      assert.equal(thrown(() => exportsOf(() => { throw new SampleFailed(error); }).runSample(0)), error);
    }
    assert.equal(logged.mock.callCount(), 0, "a sample error is not a crash");
  });

  test("a QueryFailed that escapes runSample is mapped to its sample error", () => {
    for (const [tag, val, expected] of [
      ["budget-exhausted", undefined, "budget-exhausted"],
      ["unavailable", undefined, "model-unavailable"],
      ["rejected", "too long", "failed"],
    ]) {
      fake.reply = () => {
        throw queryError(tag, val);
      };
      assert.equal(thrown(() => exportsOf(() => model.complete([Message.user("x")])).runSample(0)), expected);
    }
  });

  test("any other exception is thrown on unchanged, so the sample traps, and is logged for --dev", (t) => {
    const logged = t.mock.method(console, "error", () => {});
    const bug = new RangeError("oops");
    assert.equal(thrown(() => exportsOf(() => { throw bug; }).runSample(7)), bug);
    assert.match(logged.mock.calls[0].arguments[0], /^runSample\(7\) threw RangeError: oops\n/);
    // A thrown string is passed on as is: componentize-js fails the sample with a sample
    // error's name and traps on any other.
    assert.equal(thrown(() => exportsOf(() => { throw "nonsense"; }).runSample(0)), "nonsense");
    assert.equal(thrown(() => exportsOf(() => { throw "failed"; }).runSample(0)), "failed");
    assert.equal(logged.mock.callCount(), 2, "a sample error's name is not logged");
  });

  test("an async runSample is refused: its work would run after the sample ended", (t) => {
    t.mock.method(console, "error", () => {});
    const e = thrown(() => exportsOf(async () => {}).runSample(0));
    assert.ok(e instanceof TypeError && /synchronous/.test(e.message), String(e));
  });
});

describe("isolation", () => {
  test("run passes the code and its fuel as a u64 and returns the host's verdict", () => {
    fake.isolated = [];
    fake.verdict = "out-of-fuel";
    assert.equal(isolation.run("for (;;) {}", 1_000), isolation.Verdict.OutOfFuel);
    assert.equal(isolation.run("1"), "out-of-fuel");
    assert.deepEqual(fake.isolated, [
      { code: "for (;;) {}", fuel: 1_000n },
      { code: "1", fuel: 500_000_000n },
    ]);
    fake.verdict = "passed";
  });

  test("run refuses what the WIT cannot carry", () => {
    assert.throws(() => isolation.run(42), TypeError);
    for (const fuel of [-1, 1.5, 2 ** 64, -1n, 1n << 64n, "7"]) {
      assert.throws(() => isolation.run("1", fuel), RangeError, String(fuel));
    }
  });

  test("the isolated instance passes code that runs to its end and fails code that throws", () => {
    assert.equal(runIsolated("globalThis.__seen = 1 + 1"), true);
    assert.equal(globalThis.__seen, 2);
    assert.equal(runIsolated("throw new Error('no')"), false);
    assert.equal(runIsolated("this is not javascript"), false);
  });
});
