// Runs page: the launch form (launch.js) beside the live runs table (runs-table.js).
"use strict";

bindLaunch();
bindTable();
