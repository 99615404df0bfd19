// cashu-ts 4.x as a wallet app would use it, one command per process, for nutgate's tests.
//
//   node driver.mjs <command>   reads one JSON object on stdin, writes one JSON object on stdout
//
//   mint     {mint, amount, proofs?, version?, dleq?}    -> {token, amount, proofs}
//            mints `amount` sat (FakeWallet pays quotes at once) as exactly `proofs` proofs, or
//            one per binary digit; encoded cashuB (version 4, cashu-ts's own encoder) or cashuA
//            (3), with DLEQ proofs (the default, as cashu-ts sends them) or without
//   receive  {mint, token, requireDleq}                   -> {amount} sat kept | {error}
//            a wallet of `mint` redeems `token` (wallet.receive), as an app does on paste
//   decode_request {request}                             -> {amount, unit, mints, ...} | {error}
//   pay_request    {request, mint?}                      -> {token, amount, mint} | {error}
//            decodes a NUT-18 request and mints a fresh token that satisfies it
//   states   {mint, token}                               -> {states: ["UNSPENT"|"SPENT"|...]}
//
// A refusal by cashu-ts or the mint is a result ({error}); exit 1 means the driver itself broke.
import {
  MintQuoteState,
  Wallet,
  decodePaymentRequest,
  getEncodedToken,
} from '@cashu/cashu-ts';

async function loadWallet(mintUrl) {
  const wallet = new Wallet(mintUrl); // unit 'sat'
  await wallet.loadMint();
  return wallet;
}

// Powers of two adding up to `amount`, split further until there are `count` of them (if given).
function denominations(amount, count) {
  if (count != null && (count < 1 || count > amount)) {
    throw new Error(`cannot make ${amount} sat of ${count} proofs`);
  }
  const parts = [];
  for (let bit = 1; bit <= amount; bit *= 2) if (amount & bit) parts.push(bit);
  while (count != null && parts.length < count) {
    parts.sort((a, b) => b - a);
    const big = parts.shift();
    parts.push(big / 2, big / 2);
  }
  if (count != null && parts.length > count) {
    throw new Error(`${amount} sat needs at least ${parts.length} proofs`);
  }
  return parts.sort((a, b) => a - b);
}

async function mintProofs(wallet, amount, count) {
  const quote = await wallet.createMintQuoteBolt11(amount);
  const checked = await wallet.checkMintQuoteBolt11(quote.quote);
  if (checked.state !== MintQuoteState.PAID) throw new Error(`quote not paid: ${checked.state}`);
  const split = { type: 'random', denominations: denominations(amount, count) };
  return wallet.mintProofsBolt11(amount, checked, undefined, split);
}

// NUT-00 V3 by hand: cashu-ts 4 decodes cashuA but only encodes cashuB.
function encodeV3(mint, proofs, dleq) {
  const plain = proofs.map((p) => ({
    id: p.id,
    amount: p.amount.toNumber(),
    secret: p.secret,
    C: p.C,
    ...(dleq && p.dleq && { dleq: p.dleq }),
  }));
  const json = JSON.stringify({ token: [{ mint, proofs: plain }], unit: 'sat' });
  return 'cashuA' + Buffer.from(json).toString('base64url');
}

const commands = {
  async mint({ mint, amount, proofs, version = 4, dleq = true }) {
    const wallet = await loadWallet(mint);
    const minted = await mintProofs(wallet, amount, proofs);
    const token =
      version === 3
        ? encodeV3(mint, minted, dleq)
        : getEncodedToken({ mint, proofs: minted, unit: 'sat' }, { removeDleq: !dleq });
    return { token, amount, proofs: minted.length };
  },

  async receive({ mint, token, requireDleq = false }) {
    const wallet = await loadWallet(mint);
    const kept = await wallet.receive(token, { requireDleq });
    return { amount: kept.reduce((sum, p) => sum + p.amount.toNumber(), 0) };
  },

  async decode_request({ request }) {
    const req = decodePaymentRequest(request);
    return {
      amount: req.amount === undefined ? null : req.amount.toNumber(),
      unit: req.unit ?? null,
      mints: req.mints ?? [],
      id: req.id ?? null,
      description: req.description ?? null,
      single_use: req.singleUse,
      transports: (req.transport ?? []).map((t) => t.type),
    };
  },

  async pay_request({ request, mint }) {
    const req = decodePaymentRequest(request);
    if (req.amount === undefined) throw new Error('the request names no amount');
    if (req.unit !== undefined && req.unit !== 'sat') throw new Error(`unit ${req.unit}`);
    const mints = req.mints ?? [];
    const chosen = mint ?? mints[0];
    if (chosen === undefined) throw new Error('the request names no mint');
    if (mints.length && !mints.includes(chosen)) throw new Error(`${chosen} is not accepted`);
    const amount = req.amount.toNumber();
    const wallet = await loadWallet(chosen);
    const proofs = await mintProofs(wallet, amount);
    return { token: getEncodedToken({ mint: chosen, proofs, unit: 'sat' }), amount, mint: chosen };
  },

  async states({ mint, token }) {
    const wallet = await loadWallet(mint);
    const proofs = wallet.decodeToken(token).proofs;
    const states = await wallet.checkProofsStates(proofs);
    return { states: states.map((s) => s.state) };
  },
};

async function main() {
  const command = commands[process.argv[2]];
  if (command === undefined) throw new Error(`unknown command ${process.argv[2]}`);
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  let result;
  try {
    result = await command(JSON.parse(input));
  } catch (err) {
    result = { error: err?.message ?? String(err) };
  }
  process.stdout.write(JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
