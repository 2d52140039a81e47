/**
 * The operator page in the browser, started here: plain ES modules in this folder, no build
 * step, no framework. Spec: docs/operator-page.md. The CSP allows only this origin's scripts
 * and styles, so there is no inline style, eval or innerHTML anywhere: server text (device
 * ids, rejection details, bank errors) only goes into textContent or attribute values.
 *
 * The modules: shared parts first, then the page's sections from top to bottom.
 *   state.js                the session (csrf token) and the latest snapshot, shared
 *   dom.js                  building elements and showing server values as text
 *   gateway-api.js          requests to the JSON API, and the status line
 *   confirm-dialog.js       every change is confirmed in a dialog, then sent once
 *   secret-dialog.js        passwords, flash sheets and invitation links shown once
 *   live-updates.js         the event stream (or polling) and drawing each snapshot
 *   header-and-problems.js  the header, problems, alerts, rejections, sequence gaps
 *   health.js               the health facts
 *   charts.js               the records-per-minute uPlot charts (health, device detail)
 *   devices.js              devices table, rotate/revoke, device detail dialog
 *   provisioning.js         the "Provision a device" form
 *   money.js                payers, statements, batches, seal/settle now, corrections
 *   records.js              the latest usage records and accounts entries
 *   operators.js            invitations and the audit log
 *
 * data-testid hooks (<id> device id, <no> batch number, <payer> payer id, <i> index):
 *   page       gateway-id version username live ("live" while the event stream is up)
 *              logout-form logout status (the role=status area)
 *   problems   problems no-problems problem-<i> alerts alert-<no> alert-ack-<no>
 *              rejections-by-reason rejection-reason-<reason> sequence-gaps gap-<id>
 *   health     health health-{uptime,mqtt,devices,queue,disk,bank,uplink,clock,chain,key}
 *              records-total (chain head index) ingest-chart ingest-summary
 *   devices    devices device-{row,open,status,rotate,revoke}-<id>
 *              device-detail (dialog) device-chart device-rejections device-close
 *              provision-{form,id,payer,meters,description,key,error,submit}
 *              provision-meter-<meter> (checkboxes of meters seen on devices)
 *   money      seal-now settle-now settled payers payer-<payer> balance-<payer>
 *              carried-<payer> next-<payer> consent-<payer> statement-{html,csv,json}-<payer>
 *              bundle-<payer> batches batch-{row,state,retry,cancel}-<no> records
 *              record-row-<index> correction-{form,entry,reason,error,submit}
 *   operators  invite audit audit-refresh audit-row-<auditNo>
 *   dialogs    confirm-dialog confirm (its Confirm button) confirm-cancel secret-dialog
 *              credentials (the password shown once) flash-sheet invite-link
 *              credentials-copy flash-sheet-copy invite-link-copy secret-close
 *
 * Assumed beyond docs/operator-page.md: a POST without fields accepts the JSON body `{}`;
 * /api/devices/:id's `device` has a snapshot device's fields; audit entries are
 * gateway/web/audit-log.ts's AuditEntry; payer.statement.* are same-origin paths (others
 * are not linked); snapshot.records, when an array, holds the latest ledger entries.
 */

import { $, show } from './dom.js';
import { state } from './state.js';
import { api, showStatus } from './gateway-api.js';
import { setUpConfirmDialog } from './confirm-dialog.js';
import { setUpSecretDialog } from './secret-dialog.js';
import { connectEvents, refreshState } from './live-updates.js';
import { setUpDeviceDialog } from './devices.js';
import { setUpProvisionForm } from './provisioning.js';
import { setUpMoneyActions } from './money.js';
import { setUpOperators, loadAudit } from './operators.js';

async function start() {
  setUpConfirmDialog({ reload: () => { void refreshState(); void loadAudit(); } });
  setUpDeviceDialog();
  setUpProvisionForm();
  setUpMoneyActions();
  setUpOperators();
  setUpSecretDialog();
  const result = await api('GET', '/api/session');
  if (!result.ok) {
    // A 401 is already on its way to /login.
    if (result.status !== undefined || result.network) showStatus(`Cannot start: ${result.error} Reload the page to try again.`, 'error');
    return;
  }
  state.session.username = show(result.data.username);
  state.session.csrfToken = show(result.data.csrfToken);
  $('username').textContent = state.session.username;
  $('logout-csrf').value = state.session.csrfToken;
  connectEvents();
  void loadAudit();
}

void start();
