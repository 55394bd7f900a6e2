/** The binary COPY parser behind large PostgreSQL reads: any split of the stream, and bad input. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BinaryCopyParser, CopyFormatError } from "../src/backends/postgres/copy-out.js";

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

/** Binary COPY output of one bytea column holding `rows`, with an optional header extension. */
function copyOutput(rows: Uint8Array[], extension: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(extension.length, 4);
  const parts: Uint8Array[] = [SIGNATURE, header, extension];
  for (const row of rows) {
    const head = Buffer.alloc(6);
    head.writeInt16BE(1, 0);
    head.writeInt32BE(row.length, 2);
    parts.push(head, row);
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

function parseIn(output: Buffer, pieceSize: number): { bytes: Buffer; parser: BinaryCopyParser } {
  const parser = new BinaryCopyParser();
  const got: Uint8Array[] = [];
  for (let i = 0; i < output.length; i += pieceSize) got.push(...parser.push(output.subarray(i, i + pieceSize)));
  return { bytes: Buffer.concat(got), parser };
}

describe("binary COPY parser", () => {
  const rows = [Buffer.from("first row"), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from([0xff, 0xff, 0, 1])];
  const output = copyOutput(rows, Buffer.from("ext"));

  it("yields every row's bytes in order, however the stream is split", () => {
    for (const pieceSize of [1, 2, 3, 5, 19, 64, 1000, output.length]) {
      const { bytes, parser } = parseIn(output, pieceSize);
      assert.deepEqual(bytes, Buffer.concat(rows), `pieces of ${pieceSize}`);
      assert.equal(parser.rows, rows.length);
      assert.equal(parser.ended, true);
    }
  });

  it("counts no rows for an empty result", () => {
    const { bytes, parser } = parseIn(copyOutput([]), 4);
    assert.equal(bytes.length, 0);
    assert.equal(parser.rows, 0);
    assert.equal(parser.ended, true);
  });

  it("refuses what is not one bytea column in binary COPY format", () => {
    assert.throws(() => new BinaryCopyParser().push(Buffer.from("key\tvalue\n".repeat(3))), CopyFormatError);
    const twoColumns = Buffer.concat([SIGNATURE, Buffer.alloc(8), Buffer.from([0, 2])]);
    assert.throws(() => new BinaryCopyParser().push(twoColumns), /one column/);
    const nullValue = Buffer.concat([SIGNATURE, Buffer.alloc(8), Buffer.from([0, 1, 0xff, 0xff, 0xff, 0xff])]);
    assert.throws(() => new BinaryCopyParser().push(nullValue), /NULL/);
    assert.throws(() => new BinaryCopyParser().push(Buffer.concat([copyOutput([]), Buffer.from([0])])), /after the end/);
  });
});
