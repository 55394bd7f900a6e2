/**
 * The ListObjectsV2 response reader (src/backends/s3/listing.ts): what it reads, and the
 * documents it refuses so that the SDK parses them instead.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readListPage, xmlText } from "../src/backends/s3/listing.js";

/** A response as AWS sends it (whitespace and all), with `contents` inside. */
function document(contents: string, top = "<IsTruncated>false</IsTruncated>"): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>p%2F</Prefix><KeyCount>${(contents.match(/<Contents>/g) ?? []).length}</KeyCount>
  <MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>${top}
  ${contents}
</ListBucketResult>`;
}

function entry(key: string): string {
  return `<Contents><Key>${key}</Key><LastModified>2026-11-26T00:00:00.000Z</LastModified><ETag>&quot;abc&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>3</Size><Owner><ID>o</ID><DisplayName>me</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>`;
}

describe("s3 listing reader", () => {
  it("reads keys, truncation, the continuation token and the encoding type", () => {
    const xml = document(entry("p%2Fa") + "\n  " + entry("p%2Fb%20c"), "<ContinuationToken>old</ContinuationToken><NextContinuationToken>1Ue/+x=&amp;y</NextContinuationToken><IsTruncated>true</IsTruncated>");
    assert.deepEqual(readListPage(xml), { keys: ["p%2Fa", "p%2Fb%20c"], truncated: true, nextContinuationToken: "1Ue/+x=&y", encodingType: "url" });
    assert.deepEqual(readListPage(document("")), { keys: [], truncated: false, nextContinuationToken: undefined, encodingType: "url" });
  });

  it("decodes entities in keys (servers that ignore EncodingType send keys as XML text)", () => {
    const xml = document(entry("a&amp;b&lt;c&gt;&quot;&apos;") + entry("&#x1F986;&#233;"));
    assert.deepEqual(readListPage(xml)?.keys, [`a&b<c>"'`, "🦆é"]);
    assert.equal(xmlText("plain"), "plain");
    assert.throws(() => xmlText("&#x110000;"), RangeError);
  });

  it("refuses what it is not sure of, for the SDK to parse", () => {
    const good = document(entry("k"));
    assert.ok(readListPage(good));
    for (const [why, xml] of [
      ["an error document", "<Error><Code>AccessDenied</Code></Error>"],
      ["no IsTruncated", good.replace("<IsTruncated>false</IsTruncated>", "")],
      ["a KeyCount that disagrees", good.replace("<KeyCount>1</KeyCount>", "<KeyCount>2</KeyCount>")],
      ["CDATA", document(entry("<![CDATA[k]]>"))],
      ["a namespace prefix", good.replace("<Contents>", "<s3:Contents>")],
      ["Contents without a Key", document("<Contents><Size>1</Size></Contents>")],
    ]) {
      assert.equal(readListPage(xml as string), undefined, why);
    }
  });
});
