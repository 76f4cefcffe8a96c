/* ui_browser.js: drives the profile viewer page in headless Chromium (Debian's, through
 * playwright-core) for tests/integration/ui_browser.sh. Prints one "ok: ..." or "FAIL: ..."
 * line per check (the shell script counts them) and exits 1 on any failure.
 *
 * Environment:
 *   PLAYWRIGHT_CORE   path of the playwright-core package (third_party/ui-test/...)
 *   CHROMIUM          the browser binary (/usr/bin/chromium)
 *   UI_URL            http://127.0.0.1:PORT/debug/pprof/ui/ (token-protected gateway)
 *   UI_TOKEN          the pprof token of that gateway
 *   UI_NOVIEWER_URL   the same page on a gateway without the speedscope bundle
 *   UI_PROFILE_URL    a CPU profile URL on the gateway, to make the page's request collide
 *   UI_SHOT           where to save the screenshot (PNG)
 *   UI_PROFILE_DIR    a fresh directory for Chromium's --user-data-dir */
'use strict';

const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const http = require('http');

let failed = 0;
function ok(what) { console.log('ok: ' + what); }
function fail(what) { console.log('FAIL: ' + what); failed++; }
function check(cond, what) { (cond ? ok : fail)(what); return cond; }

/* GET url with a bearer token from Node itself (not the browser); resolves to the status. */
function nodeGet(url, token) {
  return new Promise((resolve) => {
    const req = http.get(url, { headers: { Authorization: 'Bearer ' + token } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', (e) => resolve('error ' + e.message));
    req.setTimeout(60000, () => req.destroy(new Error('timeout')));
  });
}

async function main() {
  /* the two gateways (ports) are the only origins the page may talk to */
  const origins = [new URL(process.env.UI_URL).origin, new URL(process.env.UI_NOVIEWER_URL).origin];
  const context = await chromium.launchPersistentContext(process.env.UI_PROFILE_DIR, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
    viewport: { width: 1400, height: 1000 },
  });
  const foreign = [];
  const consoleErrors = [];
  const tokenInURL = [];
  context.on('request', (r) => {
    const u = r.url();
    if (!(origins.some((o) => u.startsWith(o + '/') || u.startsWith('blob:' + o + '/')) ||
          u.startsWith('data:') || u === 'about:blank'))
      foreign.push(u);
    if (process.env.UI_TOKEN && u.includes(process.env.UI_TOKEN))
      tokenInURL.push(u);
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

  try {
    /* 1. the token: the page asks for it, keeps it in sessionStorage, lists the services */
    await page.goto(process.env.UI_URL, { waitUntil: 'load' });
    const form = page.locator('#token-form');
    await form.waitFor({ state: 'visible', timeout: 15000 }).catch(() => {});
    check(await form.isVisible(), 'without a token the page asks for one (services.json is 401)');
    const said = await page.locator('#services').innerText();
    check(/token/i.test(said) && /401/.test(said), `and says why in words: "${said.trim()}"`);
    await page.fill('#token-input', process.env.UI_TOKEN);
    await page.click('#token-form button[type=submit]');
    const svc = page.locator('article.service[data-service="randomstring"]');
    await svc.waitFor({ timeout: 15000 });
    ok('with the token the page lists the service "randomstring"');
    const kinds = await svc.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.kind));
    check(['profile', 'heap', 'allocs', 'goroutine', 'threadcreate', 'block', 'mutex']
            .every((k) => kinds.includes(k)), `every profile kind has a row (${kinds.join(', ')})`);
    const link = await svc.locator('tr[data-kind=heap] td.text a').first().getAttribute('href');
    check(link === '/debug/pprof/heap?debug=1', `heap has its debug=1 text link (${link})`);
    const stored = await page.evaluate(() => sessionStorage.getItem('profgate.pprof.token'));
    check(stored === process.env.UI_TOKEN, 'the token is kept in sessionStorage');

    /* 2. a text view through the page (fetched with the token) */
    await svc.locator('tr[data-kind=goroutine] td.text a').first().click();
    await page.locator('#viewer-text').waitFor({ state: 'visible', timeout: 15000 });
    const text = await page.locator('#viewer-text').innerText();
    check(/goroutine profile: total \d+/.test(text),
          `goroutine debug=1 is shown as text ("${text.split('\n')[0]}")`);

    /* 3. a CPU profile already running: the page says so in words */
    const busy = nodeGet(process.env.UI_PROFILE_URL, process.env.UI_TOKEN);
    await page.waitForTimeout(1200); /* let that one reach the agent first */
    const cpu = svc.locator('tr[data-kind=profile]');
    await cpu.locator('input[data-seconds]').fill('2');
    await cpu.locator('button').click();
    const status = page.locator('#status');
    await page.waitForFunction(() => ['error', 'done'].includes(
      document.getElementById('status').dataset.state), null, { timeout: 30000 });
    const busyText = await status.innerText();
    check((await status.getAttribute('data-state')) === 'error' &&
          /already being collected/.test(busyText) && /\b(409|500)\b/.test(busyText),
          `a second CPU profile is refused in words: "${busyText.trim()}"`);
    const busyStatus = await busy;
    check(busyStatus === 200, `the first CPU profile (from Node) completed (${busyStatus})`);

    /* 4. the real thing: 2 s CPU profile under load, countdown, speedscope, sandwich view */
    await cpu.locator('input[data-seconds]').fill('2');
    await cpu.locator('button').click();
    await page.waitForFunction(() => /s left/.test(document.getElementById('status-text').textContent),
                               null, { timeout: 5000 }).catch(() => {});
    const waiting = await page.locator('#status-text').innerText();
    check(/Collecting randomstring: CPU profile, 2 s — 2 s window, \d s left/.test(waiting),
          `while collecting, the page counts down: "${waiting}"`);
    await page.waitForFunction(() => ['error', 'done'].includes(
      document.getElementById('status').dataset.state), null, { timeout: 30000 });
    const doneText = await page.locator('#status-text').innerText();
    check((await status.getAttribute('data-state')) === 'done', `the profile arrived: "${doneText}"`);
    const frame = page.frameLocator('#viewer-frame');
    const sandwich = frame.getByText(/^\W*Sandwich\s*$/).first(); /* the tab has an icon glyph */
    await sandwich.waitFor({ timeout: 30000 });
    ok('speedscope loaded the profile (its view tabs are shown)');
    await sandwich.click();
    const fn = frame.getByText(/^rs_random_(char|string)$/).first();
    let found = true;
    await fn.waitFor({ timeout: 20000 }).catch(() => { found = false; });
    check(found, 'the sandwich table lists ' + (found ? await fn.innerText() : 'rs_random_char'));
    await page.waitForTimeout(500);
    await page.screenshot({ path: process.env.UI_SHOT, fullPage: true });
    ok('screenshot saved: ' + process.env.UI_SHOT);

    /* 5. a gateway without the speedscope bundle: the page says how to install it */
    await page.goto(process.env.UI_NOVIEWER_URL, { waitUntil: 'load' });
    await page.locator('#token-form').waitFor({ state: 'visible', timeout: 15000 });
    await page.fill('#token-input', process.env.UI_TOKEN); /* sessionStorage is per origin */
    await page.click('#token-form button[type=submit]');
    const nv = page.locator('#notice');
    await nv.waitFor({ state: 'visible', timeout: 15000 }).catch(() => {});
    const nvText = (await nv.isVisible()) ? await nv.innerText() : '';
    check(/not installed/.test(nvText) && /install-ui-deps\.sh/.test(nvText),
          `without speedscope the page says how to install it: "${nvText.slice(0, 120)}…"`);
    /* and its agent is not there: the 502 in words */
    await page.locator('article.service[data-service="randomstring"] tr[data-kind=threadcreate] button')
      .click();
    await page.waitForFunction(() => ['error', 'done'].includes(
      document.getElementById('status').dataset.state), null, { timeout: 30000 });
    const badText = await page.locator('#status-text').innerText();
    check(/could not reach the service's agent \(502: agent of "randomstring"/.test(badText),
          `an unreachable agent is reported in words: "${badText}"`);
    await page.screenshot({ path: process.env.UI_SHOT.replace(/\.png$/, '-noviewer.png') });
  } catch (e) {
    fail('browser session: ' + (e && e.message ? e.message.split('\n')[0] : e));
    await page.screenshot({ path: process.env.UI_SHOT.replace(/\.png$/, '-failure.png') })
      .catch(() => {});
  }

  check(foreign.length === 0, 'no request left the gateway\'s origin' +
        (foreign.length ? ': ' + foreign.slice(0, 5).join(' ') : ''));
  check(tokenInURL.length === 0, 'the token never appeared in a URL');
  const csp = consoleErrors.filter((m) => /Content Security Policy/i.test(m));
  check(csp.length === 0, 'no Content-Security-Policy violation' +
        (csp.length ? ': ' + csp[0] : ''));
  for (const m of consoleErrors) console.log('  console: ' + m.slice(0, 300));
  await context.close();
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log('FAIL: ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
  process.exit(1);
});
