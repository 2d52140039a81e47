/**
 * Writes the golden vectors in this folder:
 *
 *   npx tsx test/vectors/generate.ts
 *
 * Vectors are regenerated only on purpose, when the wire contract changes deliberately, and
 * the diff is reviewed like code: never regenerate to make a failing test pass. Published
 * vectors (RFC 8785, RFC 8032, RFC 6962) are copied in verbatim and this script refuses to
 * write anything if the code disagrees with them; vectors.test.ts then re-checks every
 * vector, and cross-checks signatures, hashes and Merkle roots with node:crypto.
 */
import { writeFileSync } from 'node:fs';
import { canonicalBytes, canonicalJson } from '../../protocol/canonical-json.ts';
import { ZERO_HASH_HEX } from '../../protocol/hash.ts';
import { leafHash, MerkleTree, merkleRoot } from '../../protocol/merkle.ts';
import { formatDecimal, MINOR_DIGITS, nanoPerMinor, parseDecimal, parsePriceNano, toMinorUnits } from '../../protocol/money.ts';
import { signingKeyFromSecret, signPayload, type SigningKey } from '../../protocol/signing.ts';
import { parseUsageMessage, type UsageEventMessage, type UsageMessage } from '../../protocol/usage-message.ts';
import { marginalChargeNano, periodOf, tariffHash, type TariffVersion } from '../../protocol/tariff.ts';
import { type BatchHeader, type Checkpoint, chainHash, messageHash, type SignedBatchHeader, type UsageRecord } from '../../protocol/usage-record.ts';
import { hex, nodeSha256, nodeSign, referenceMth, unhex, utf8 } from './reference.ts';

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`Cannot write vectors: ${what}`);
}

function write(name: string, content: unknown): void {
  writeFileSync(new URL(`./${name}`, import.meta.url), `${JSON.stringify(content, null, 2)}\n`);
  console.log(`wrote test/vectors/${name}`);
}

/** Fixed keys: a seed is SHA-256 of a label, so anyone can rebuild it. */
function vectorKey(label: string): { label: string; seed: string; key: SigningKey } {
  const seed = nodeSha256(utf8(label));
  return { label, seed: hex(seed), key: signingKeyFromSecret(seed) };
}

// ---------------------------------------------------------------------------------------
// canonical-json.json

const CANONICAL_DOCUMENTS: { name: string; source: string; input: string; canonical: string }[] = [
  {
    name: 'sample object',
    source: 'RFC 8785 §3.2.2',
    input: String.raw`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
    canonical: String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
  },
  {
    name: 'sorting of object properties by UTF-16 code units',
    source: 'RFC 8785 §3.2.3',
    input: String.raw`{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
    canonical:
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  },
  {
    name: 'nested members are sorted at every level, arrays keep their order',
    source: 'meterbridge',
    input: '{ "b": [ { "z": 1, "a": 2 }, [ 3, 1 ] ], "a": { "d": true, "c": null }, "A": [] , "": {} }',
    canonical: '{"":{},"A":[],"a":{"c":null,"d":true},"b":[{"a":2,"z":1},[3,1]]}',
  },
  {
    name: 'string escapes: short forms, other controls as lower-case \\u00xx, DEL and non-ASCII as themselves',
    source: 'meterbridge',
    input: String.raw`{"s": "\u0000\u0008\u0009\u000A\u000B\u000C\u000D\u001F\u007F \" \\ \/ \u00e9 \u2028 \ud834\udd1e"}`,
    canonical: String.raw`{"s":"\u0000\b\t\n\u000b\f\r\u001f` + '\u007f \\" \\\\ / é \u2028 𝄞"}',
  },
  {
    name: 'integers, negative zero and exponents',
    source: 'meterbridge',
    input: '[0, -0, -0.0, 1, -1, 9007199254740991, 1E21, 1E20, 1.0, 0.1, 1e-7, 123e-2]',
    canonical: '[0,0,0,1,-1,9007199254740991,1e+21,100000000000000000000,1,0.1,1e-7,1.23]',
  },
  {
    name: 'member names that look like numbers sort as strings',
    source: 'meterbridge',
    input: '{"9": 0, "10": 0, "1": 0, "a": 0, "B": 0}',
    canonical: '{"1":0,"10":0,"9":0,"B":0,"a":0}',
  },
  {
    name: 'a usage message v1',
    source: 'docs/protocol.md',
    input: '{"v":1,"deviceId":"cnc-7","seq":41,"meter":"spindle-cycles","quantity":"1200","unit":"cycle","time":"2026-11-27T15:00:00.000Z"}',
    canonical: '{"deviceId":"cnc-7","meter":"spindle-cycles","quantity":"1200","seq":41,"time":"2026-11-27T15:00:00.000Z","unit":"cycle","v":1}',
  },
];

/** RFC 8785 Appendix B: IEEE 754 doubles and their canonical text; null means "must be refused". */
const CANONICAL_NUMBERS: [string, string | null][] = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'],
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['7fffffffffffffff', null],
  ['7ff0000000000000', null],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

function canonicalJsonVectors(): unknown {
  const documents = CANONICAL_DOCUMENTS.map((doc) => {
    check(canonicalJson(JSON.parse(doc.input)) === doc.canonical, `canonical JSON of "${doc.name}"`);
    const bytes = canonicalBytes(JSON.parse(doc.input));
    return { ...doc, canonicalHex: hex(bytes), sha256: hex(nodeSha256(bytes)) };
  });
  const numbers = CANONICAL_NUMBERS.map(([ieee754, canonical]) => {
    const value = Buffer.from(ieee754, 'hex').readDoubleBE(0);
    if (canonical === null) {
      check(!Number.isFinite(value), `${ieee754} should not be finite`);
      return { ieee754, canonical, note: Number.isNaN(value) ? 'NaN: refused' : 'Infinity: refused' };
    }
    check(canonicalJson(value) === canonical, `canonical text of ${ieee754}`);
    return { ieee754, canonical };
  });
  return {
    about: 'RFC 8785 (JCS) vectors: input is JSON text, canonical is the canonical text, canonicalHex its UTF-8 bytes. numbers: RFC 8785 Appendix B, big-endian IEEE 754 double → canonical text (null: must be refused).',
    documents,
    numbers,
  };
}

// ---------------------------------------------------------------------------------------
// ed25519.json, chain.json

/** RFC 8032 §7.1 TEST 1-3: the primitive the payload signatures rest on. */
const RFC8032 = [
  {
    name: 'RFC 8032 §7.1 TEST 1',
    secretKey: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'RFC 8032 §7.1 TEST 2',
    secretKey: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'RFC 8032 §7.1 TEST 3',
    secretKey: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

const GATEWAY = vectorKey('meterbridge vector key: gateway-1');
const OTHER = vectorKey('meterbridge vector key: gateway-2');

interface ChainInput {
  message: UsageMessage;
  payer: string;
  tariff: TariffVersion;
  receivedAt: string;
}

const perUnit = (meter: string, baseUnit: string, unitPrice: string): TariffVersion => ({
  v: 1, id: `${meter}@1`, meter, version: '1', effectiveFrom: '2026-01-01T00:00:00.000Z', currency: 'EUR', baseUnit, priceUnit: baseUnit,
  period: 'month', timeZone: 'Europe/Berlin', rule: { type: 'per_unit', unitPrice },
});
const CYCLES = perUnit('spindle-cycles', 'cycle', '0.0003');
const SLOTS = perUnit('slot-seconds', 'slot-second', '0.000012345');
/** Priced per mile, counted in metres, two graduated tiers: the conversion is exact on the period's total. */
const HAUL: TariffVersion = {
  v: 1, id: 'haul-distance@3/globex', meter: 'haul-distance', version: '3', effectiveFrom: '2026-10-01T00:00:00.000Z', currency: 'EUR', baseUnit: 'm', priceUnit: 'mile',
  period: 'month', timeZone: 'Europe/London', rule: { type: 'graduated', tiers: [{ upTo: '5', unitPrice: '0.25' }, { upTo: null, unitPrice: '0.19' }] },
};

const CHAIN_INPUTS: ChainInput[] = [
  {
    message: { v: 1, deviceId: 'cnc-7', seq: 41, meter: 'spindle-cycles', quantity: '1200', unit: 'cycle', time: '2026-11-27T15:00:00.000Z' },
    payer: 'acme',
    tariff: CYCLES,
    receivedAt: '2026-11-27T15:00:00.120Z',
  },
  {
    message: { v: 1, deviceId: 'truck-3', seq: 7, meter: 'haul-distance', quantity: '15250', unit: 'm', time: '2026-11-27T15:00:02Z' },
    payer: 'globex',
    tariff: HAUL,
    receivedAt: '2026-11-27T15:00:02.481Z',
  },
  {
    message: { v: 1, deviceId: 'cnc-7', seq: 42, meter: 'spindle-cycles', quantity: '777', unit: 'cycle', time: '2026-11-27T15:01:00.000Z' },
    payer: 'acme',
    tariff: CYCLES,
    receivedAt: '2026-11-27T15:01:00.095Z',
  },
  {
    message: { v: 1, deviceId: 'yard-1', seq: 1, meter: 'slot-seconds', quantity: '3600', unit: 'slot-second', time: '2026-11-27T15:59:59.5Z' },
    payer: 'acme',
    tariff: SLOTS,
    receivedAt: '2026-11-27T16:00:00.002Z',
  },
];

function buildRecords(): { message: UsageMessage; record: UsageRecord; canonical: string; prevHash: string; hash: string }[] {
  let prevHash = ZERO_HASH_HEX;
  const periodQuantities = new Map<string, bigint>();
  return CHAIN_INPUTS.map((input, i) => {
    const parsed = parseUsageMessage(utf8(JSON.stringify(input.message)));
    check(parsed.ok, `chain message ${i} must be valid`);
    const { message, tariff } = input;
    const quantity = BigInt((message as UsageEventMessage).quantity);
    const period = periodOf(tariff, message.time);
    const periodKey = `${input.payer}!${tariff.id}!${period}`;
    const before = periodQuantities.get(periodKey) ?? 0n;
    periodQuantities.set(periodKey, before + quantity);
    const record: UsageRecord = {
      v: 1,
      index: i + 1,
      gatewayId: 'gateway-1',
      deviceId: message.deviceId,
      seq: message.seq,
      meter: message.meter,
      quantity: `${quantity}`,
      unit: message.unit,
      deviceTime: message.time,
      receivedAt: input.receivedAt,
      payer: input.payer,
      tariff: tariff.id,
      tariffHash: tariffHash(tariff),
      period,
      periodQtyBefore: `${before}`,
      currency: tariff.currency,
      amountNano: `${marginalChargeNano(tariff, before, quantity, false)}`,
      messageHash: messageHash(message),
    };
    const hash = chainHash(prevHash, record);
    const canonical = canonicalJson(record);
    check(hash === hex(nodeSha256(unhex(prevHash), utf8(canonical))), `chain hash of record ${i + 1}`);
    const entry = { message, record, canonical, prevHash, hash };
    prevHash = hash;
    return entry;
  });
}

function chainVectors(): { vectors: unknown; header: BatchHeader; checkpoint: Checkpoint } {
  const records = buildRecords();
  const batchRecords = records.filter((entry) => entry.record.payer === 'acme');
  const leaves = batchRecords.map((entry) => canonicalBytes(entry.record));
  const tree = new MerkleTree(leaves.map(leafHash));
  check(hex(tree.root) === hex(referenceMth(leaves)), 'batch Merkle root');
  const totalNano = batchRecords.reduce((sum, entry) => sum + BigInt(entry.record.amountNano), 0n);
  const carriedInNano = 4_200_000n;
  const { minor, carriedNano } = toMinorUnits(totalNano + carriedInNano, 'EUR');
  const head = records[records.length - 1]!;
  const header: BatchHeader = {
    v: 1,
    batchId: 'gateway-1/1',
    gatewayId: 'gateway-1',
    payer: 'acme',
    currency: 'EUR',
    recordCount: batchRecords.length,
    firstIndex: batchRecords[0]!.record.index,
    lastIndex: batchRecords[batchRecords.length - 1]!.record.index,
    merkleRoot: hex(tree.root),
    totalNano: `${totalNano}`,
    carriedInNano: `${carriedInNano}`,
    amountMinor: `${minor}`,
    carriedOutNano: `${carriedNano}`,
    sealedAt: '2026-11-27T16:00:00.000Z',
    chainIndex: head.record.index,
    chainHash: head.hash,
  };
  const signedHeader: SignedBatchHeader = { ...header, sig: signPayload(header, GATEWAY.key) };
  check(signedHeader.sig.value === hex(nodeSign(unhex(GATEWAY.seed), canonicalBytes(header))), 'batch header signature');
  const checkpoint: Checkpoint = { v: 1, gatewayId: 'gateway-1', index: head.record.index, hash: head.hash, time: '2026-11-27T16:00:00.010Z' };
  const vectors = {
    about:
      'A journal of four records, hash-chained (hash = SHA-256(prevHash bytes ‖ canonical bytes of record), first prevHash 64 zeros), and a sealed batch of payer acme\'s records: Merkle root over their canonical bytes in journal order, money identity, Ed25519 signature by the gateway key, and an inclusion proof per record.',
    gatewayKey: { label: GATEWAY.label, seed: GATEWAY.seed, publicKey: hex(GATEWAY.key.publicKey), keyId: GATEWAY.key.keyId },
    tariffs: [CYCLES, HAUL, SLOTS],
    records,
    batch: {
      header: signedHeader,
      records: batchRecords.map((entry, leafIndex) => ({ index: entry.record.index, leafIndex, proof: tree.proof(leafIndex) })),
    },
    checkpoint: { ...checkpoint, sig: signPayload(checkpoint, GATEWAY.key) },
  };
  return { vectors, header, checkpoint };
}

function ed25519Vectors(header: BatchHeader, checkpoint: Checkpoint): unknown {
  const payloads: { name: string; signer: typeof GATEWAY; payload: object }[] = [
    { name: 'batch header of chain.json', signer: GATEWAY, payload: header },
    { name: 'checkpoint of chain.json', signer: GATEWAY, payload: checkpoint },
    { name: 'the same checkpoint signed by another key', signer: OTHER, payload: checkpoint },
    { name: 'non-ASCII strings and unsorted members', signer: GATEWAY, payload: { payer: 'Müller & Söhne GmbH', note: '€ 0.36 😀', a: [1, 'z', null] } },
    { name: 'empty object', signer: GATEWAY, payload: {} },
  ];
  return {
    about:
      'Ed25519 (RFC 8032) over RFC 8785 canonical bytes. rfc8032: the primitive on raw messages. payloads: seed = SHA-256(UTF-8 label); publicKey, keyId = first 16 hex of SHA-256(publicKey); signature over canonicalHex.',
    rfc8032: RFC8032.map((vector) => {
      check(hex(nodeSign(unhex(vector.secretKey), unhex(vector.message))) === vector.signature, `${vector.name} with node:crypto`);
      check(hex(signingKeyFromSecret(unhex(vector.secretKey)).publicKey) === vector.publicKey, `${vector.name} public key`);
      return vector;
    }),
    payloads: payloads.map(({ name, signer, payload }) => {
      const bytes = canonicalBytes(payload);
      const signature = signPayload(payload, signer.key);
      check(signature.value === hex(nodeSign(unhex(signer.seed), bytes)), `signature of "${name}" against node:crypto`);
      return {
        name,
        seedLabel: signer.label,
        seed: signer.seed,
        publicKey: hex(signer.key.publicKey),
        keyId: signer.key.keyId,
        payload,
        canonical: canonicalJson(payload),
        canonicalHex: hex(bytes),
        signature,
      };
    }),
  };
}

// ---------------------------------------------------------------------------------------
// merkle.json

/** The leaves and roots of the Certificate Transparency (RFC 6962) reference tests. */
const RFC6962_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const RFC6962_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const MERKLE_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 32, 33];

function merkleVectors(): unknown {
  const rfcLeaves = RFC6962_LEAVES.map(unhex);
  const rfc6962 = {
    leaves: RFC6962_LEAVES,
    trees: RFC6962_ROOTS.map((root, i) => {
      const leaves = rfcLeaves.slice(0, i + 1);
      check(hex(merkleRoot(leaves.map(leafHash))) === root, `RFC 6962 root of ${i + 1} leaves`);
      const tree = new MerkleTree(leaves.map(leafHash));
      return { treeSize: i + 1, root, proofs: leaves.map((_leaf, leafIndex) => tree.proof(leafIndex)) };
    }),
  };
  const trees = MERKLE_SIZES.map((treeSize) => {
    const leaves = Array.from({ length: treeSize }, (_, i) => utf8(`record ${i}`));
    const tree = new MerkleTree(leaves.map(leafHash));
    check(hex(tree.root) === hex(referenceMth(leaves)), `root of ${treeSize} leaves`);
    const indices = treeSize <= 17 ? leaves.map((_leaf, i) => i) : [0, 1, Math.floor(treeSize / 2), treeSize - 2, treeSize - 1];
    return { treeSize, leaves: leaves.map(hex), root: hex(tree.root), proofs: indices.map((i) => tree.proof(i)) };
  });
  return {
    about:
      'RFC 9162 §2.1 Merkle trees: leaf hash SHA-256(0x00 ‖ data), node hash SHA-256(0x01 ‖ left ‖ right), split at the largest power of two below n. Leaves are hex data (not yet hashed); proof paths are sibling hashes from the leaf up. rfc6962: the Certificate Transparency reference leaves and roots.',
    emptyRoot: hex(merkleRoot([])),
    rfc6962,
    trees,
  };
}

// ---------------------------------------------------------------------------------------
// money.json

function moneyVectors(): unknown {
  const amounts: [bigint, string][] = [
    [0n, 'EUR'],
    [1n, 'EUR'],
    [9_999_999n, 'EUR'],
    [10_000_000n, 'EUR'],
    [12_345_678_901n, 'EUR'],
    [641_742_000n, 'EUR'],
    [300_000n, 'GBP'],
    [99_999_999_999_999_999_999n, 'USD'],
    [1_005_000_000n, 'CHF'],
    [999_999_999n, 'JPY'],
    [1_999_999_999n, 'JPY'],
    [123_456_789_012_345n, 'JPY'],
  ];
  const decimals: [string, number][] = [
    ['0', 9],
    ['0.0003', 9],
    ['0.000000001', 9],
    ['12.345678901', 9],
    ['1.5', 2],
    ['12.34', 2],
    ['1234', 0],
  ];
  const refused: [string, number, string][] = [
    ['0.0000000001', 9, 'more decimals than the scale'],
    ['12.345', 2, 'more decimals than the scale'],
    ['1.0', 0, 'more decimals than the scale'],
    ['-1', 9, 'negative'],
    ['01', 9, 'leading zero'],
    ['1e3', 9, 'exponent'],
    ['.5', 9, 'no whole part'],
    ['1.', 9, 'no fraction digits'],
    ['', 9, 'empty'],
    [' 1', 9, 'whitespace'],
  ];
  const sequences: [string, bigint[]][] = [
    ['EUR', [4_999_999n, 4_999_999n, 2n, 10_000_000n, 0n, 123_456_789n]],
    ['JPY', [300_000_000n, 300_000_000n, 300_000_000n, 300_000_000n]],
    ['GBP', [1n, 1n, 1n]],
  ];
  return {
    about:
      'Money at nano scale (1e-9 of the major unit). toMinorUnits: minor = floor(amountNano / nanoPerMinor), carriedNano = the rest. decimals: text at digits decimal places → integer. batchSequences: each batch pays floor((total + carriedIn) / nanoPerMinor) and carries the rest into the next. Amounts are decimal strings.',
    nanoPerMinor: Object.fromEntries(Object.keys(MINOR_DIGITS).map((currency) => [currency, `${nanoPerMinor(currency)}`])),
    toMinorUnits: amounts.map(([amountNano, currency]) => {
      const { minor, carriedNano } = toMinorUnits(amountNano, currency);
      return { amountNano: `${amountNano}`, currency, minor: `${minor}`, carriedNano: `${carriedNano}` };
    }),
    decimals: decimals.map(([text, digits]) => {
      const value = parseDecimal(text, digits, 'text');
      const [whole, fraction = ''] = text.split('.');
      check(value === BigInt(`${whole}${fraction.padEnd(digits, '0')}`) && formatDecimal(value, digits).startsWith(text), `decimal ${text}`);
      return { text, digits, value: `${value}` };
    }),
    refusedDecimals: refused.map(([text, digits, why]) => {
      let refusedIt = false;
      try {
        parseDecimal(text, digits, 'text');
      } catch {
        refusedIt = true;
      }
      check(refusedIt, `decimal ${JSON.stringify(text)} must be refused`);
      return { text, digits, why };
    }),
    batchSequences: sequences.map(([currency, totals]) => {
      let carry = 0n;
      const batches = totals.map((totalNano) => {
        const carriedInNano = carry;
        const { minor, carriedNano } = toMinorUnits(totalNano + carriedInNano, currency);
        carry = carriedNano;
        return { totalNano: `${totalNano}`, carriedInNano: `${carriedInNano}`, amountMinor: `${minor}`, carriedOutNano: `${carriedNano}` };
      });
      return { currency, batches };
    }),
  };
}

const chain = chainVectors();
write('canonical-json.json', canonicalJsonVectors());
write('ed25519.json', ed25519Vectors(chain.header, chain.checkpoint));
write('merkle.json', merkleVectors());
write('chain.json', chain.vectors);
write('money.json', moneyVectors());
