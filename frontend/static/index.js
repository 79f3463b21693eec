// Runs page: the launch form (launch.js) beside the live runs table (runs-table.js).
import { bindLaunch } from "./launch.js";
import { bindTable } from "./runs-table.js";

bindLaunch();
bindTable();
